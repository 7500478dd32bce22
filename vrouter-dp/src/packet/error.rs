//! The packet layer's error type: one variant per reason a packet is rejected.
//!
//! Every parse, flow-key, encapsulation and decapsulation failure maps to exactly one
//! [`Error`] variant. Each variant has a stable snake-case name ([`Error::as_str`]) and a
//! dense index ([`Error::index`]) so the pipeline can keep one drop counter per reason in
//! a fixed array and export it under a name that does not change between releases.

use thiserror::Error;

/// Why a packet (or a header in it) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the header (or the length the header claims).
    #[error("packet too short")]
    TooShort,
    /// The IP version field does not match the header family.
    #[error("bad IP version")]
    BadVersion,
    /// The IPv4 IHL (or TCP data offset, or extension-header length) is invalid.
    #[error("bad header length")]
    BadHeaderLength,
    /// The IP total length / payload length (or UDP length) is inconsistent with the buffer.
    #[error("bad total length")]
    BadTotalLength,
    /// A header checksum did not verify (or the NIC flagged it bad).
    #[error("bad checksum")]
    BadChecksum,
    /// The packet is an IP fragment where a whole datagram is required.
    #[error("IP fragment")]
    Fragment,
    /// The IP TTL / hop limit or the MPLS TTL is expired.
    #[error("TTL expired")]
    TtlExpired,
    /// The outer destination address is not a local underlay address.
    #[error("wrong destination address")]
    WrongDestination,
    /// The EtherType is not one this path handles.
    #[error("unsupported EtherType")]
    UnsupportedEtherType,
    /// The IP protocol (next header) is not one this path handles.
    #[error("unsupported IP protocol")]
    UnsupportedProtocol,
    /// The UDP destination port is not a known tunnel port.
    #[error("unknown UDP port")]
    UnknownUdpPort,
    /// The GRE flags or version are invalid (routing present, reserved bits, version != 0).
    #[error("bad GRE flags")]
    BadGreFlags,
    /// The GRE protocol type is not MPLS unicast.
    #[error("unsupported GRE protocol")]
    UnsupportedGreProtocol,
    /// The VXLAN I flag is clear.
    #[error("bad VXLAN flags")]
    BadVxlanFlags,
    /// The MPLS label stack is longer than the supported depth or never reaches bottom of stack.
    #[error("bad MPLS label stack")]
    BadLabelStack,
    /// An MPLS control word is required but the first nibble is not zero.
    #[error("bad MPLS control word")]
    BadControlWord,
    /// More IPv6 extension headers than the walker follows.
    #[error("too many IPv6 extension headers")]
    TooManyExtensionHeaders,
    /// An ARP packet is not Ethernet/IPv4 or has an unknown operation.
    #[error("bad ARP packet")]
    BadArp,
    /// A field value is out of range for the header (e.g. a VNI wider than 24 bits).
    #[error("field value out of range")]
    BadField,
    /// The buffer has not enough headroom for the encapsulation.
    #[error("not enough headroom")]
    NoHeadroom,
    /// Tunnel parameters are inconsistent (mixed address families, payload not supported
    /// by the encapsulation, ...).
    #[error("bad tunnel parameters")]
    BadTunnelParams,
}

impl Error {
    /// Every variant, in [`Error::index`] order.
    pub const ALL: [Error; 21] = [
        Error::TooShort,
        Error::BadVersion,
        Error::BadHeaderLength,
        Error::BadTotalLength,
        Error::BadChecksum,
        Error::Fragment,
        Error::TtlExpired,
        Error::WrongDestination,
        Error::UnsupportedEtherType,
        Error::UnsupportedProtocol,
        Error::UnknownUdpPort,
        Error::BadGreFlags,
        Error::UnsupportedGreProtocol,
        Error::BadVxlanFlags,
        Error::BadLabelStack,
        Error::BadControlWord,
        Error::TooManyExtensionHeaders,
        Error::BadArp,
        Error::BadField,
        Error::NoHeadroom,
        Error::BadTunnelParams,
    ];

    /// Number of variants (the size of a per-reason counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// A stable snake-case name, used as the drop-counter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::TooShort => "too_short",
            Error::BadVersion => "bad_version",
            Error::BadHeaderLength => "bad_header_length",
            Error::BadTotalLength => "bad_total_length",
            Error::BadChecksum => "bad_checksum",
            Error::Fragment => "fragment",
            Error::TtlExpired => "ttl_expired",
            Error::WrongDestination => "wrong_destination",
            Error::UnsupportedEtherType => "unsupported_ethertype",
            Error::UnsupportedProtocol => "unsupported_protocol",
            Error::UnknownUdpPort => "unknown_udp_port",
            Error::BadGreFlags => "bad_gre_flags",
            Error::UnsupportedGreProtocol => "unsupported_gre_protocol",
            Error::BadVxlanFlags => "bad_vxlan_flags",
            Error::BadLabelStack => "bad_label_stack",
            Error::BadControlWord => "bad_control_word",
            Error::TooManyExtensionHeaders => "too_many_extension_headers",
            Error::BadArp => "bad_arp",
            Error::BadField => "bad_field",
            Error::NoHeadroom => "no_headroom",
            Error::BadTunnelParams => "bad_tunnel_params",
        }
    }

    /// Alias of [`Error::as_str`].
    pub const fn name(self) -> &'static str {
        self.as_str()
    }

    /// A dense index in `0..Error::COUNT`, for counter arrays.
    pub const fn index(self) -> usize {
        match self {
            Error::TooShort => 0,
            Error::BadVersion => 1,
            Error::BadHeaderLength => 2,
            Error::BadTotalLength => 3,
            Error::BadChecksum => 4,
            Error::Fragment => 5,
            Error::TtlExpired => 6,
            Error::WrongDestination => 7,
            Error::UnsupportedEtherType => 8,
            Error::UnsupportedProtocol => 9,
            Error::UnknownUdpPort => 10,
            Error::BadGreFlags => 11,
            Error::UnsupportedGreProtocol => 12,
            Error::BadVxlanFlags => 13,
            Error::BadLabelStack => 14,
            Error::BadControlWord => 15,
            Error::TooManyExtensionHeaders => 16,
            Error::BadArp => 17,
            Error::BadField => 18,
            Error::NoHeadroom => 19,
            Error::BadTunnelParams => 20,
        }
    }
}

/// The packet layer's result type.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all_order_and_names_are_unique() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?}");
        }
        let mut names: Vec<_> = Error::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Error::COUNT);
        assert_eq!(Error::Fragment.name(), "fragment");
        assert_eq!(Error::TooShort.to_string(), "packet too short");
    }
}
