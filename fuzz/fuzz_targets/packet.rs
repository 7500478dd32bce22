//! Arbitrary bytes through parse, flow-key extraction and decapsulation: nothing may
//! panic, and the fast paths must agree with the general ones.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use vrouter_dp::packet::{
    extract_ethernet, extract_ip, extract_ipv4, ipv6, strip_control_word, Decapsulator, HeapBuf,
    L2Header, LabelStack, PacketBuf, VrfId,
};

fuzz_target!(|data: &[u8]| {
    let _ = L2Header::parse(data);
    let flow = extract_ethernet(VrfId(1), data);
    if data.len() >= 14 && data[12..14] == [0x08, 0x00] {
        assert_eq!(flow, extract_ipv4(VrfId(1), &data[14..], 14));
    }
    let _ = extract_ip(VrfId(1), data);
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = p.transport();
    }
    let _ = LabelStack::parse(data);
    let dec = Decapsulator::new(
        Some(Ipv4Addr::new(172, 16, 0, 2)),
        Some("fd00::2".parse().unwrap_or(std::net::Ipv6Addr::UNSPECIFIED)),
    );
    assert_eq!(dec.parse(data, 0), dec.parse_general(data, 0));
    let mut buf = HeapBuf::from_bytes(data);
    if let Ok(d) = dec.decap(&mut buf) {
        assert_eq!(buf.len(), d.inner_len);
        let _ = extract_ethernet(VrfId(2), buf.data());
        let _ = strip_control_word(&mut buf);
    } else {
        assert_eq!(buf.data(), data);
    }
});
