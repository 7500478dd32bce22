//! Malformed config text yields a typed error, never a panic.

// Shared test code outside #[test] functions unwraps too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pmd_config::{Config, IpPrefix, MacAddr, PciAddr};
use proptest::prelude::*;

const EXAMPLES: &[&str] = &[
    include_str!("../configs/default.toml"),
    include_str!("../configs/one-nic-vxlan.toml"),
    include_str!("../configs/two-bonded-nics.toml"),
    include_str!("../configs/sriov-vf-uplink.toml"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = Config::from_toml_str(&s);
    }

    /// Drop one line and replace another with a random value: either valid, or an
    /// error that names a line inside the document.
    #[test]
    fn mutated_examples_fail_cleanly(
        which in 0..EXAMPLES.len(),
        drop in 0usize..200,
        edit in 0usize..200,
        value in prop_oneof![
            Just("-1".to_string()),
            Just("\"\"".to_string()),
            Just("[]".to_string()),
            Just("99999999999".to_string()),
            Just("{ a = 1 }".to_string()),
            "[a-z0-9:./\"]{0,12}",
        ],
    ) {
        let src = EXAMPLES[which];
        let lines: Vec<&str> = src.lines().collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i == drop % lines.len() {
                continue;
            }
            if i == edit % lines.len() {
                if let Some((k, _)) = l.split_once('=') {
                    out.push(format!("{k}= {value}"));
                    continue;
                }
            }
            out.push(l.to_string());
        }
        let text = out.join("\n");
        if let Err(e) = Config::from_toml_str(&text) {
            for f in e.field_errors() {
                if let Some(line) = f.line {
                    prop_assert!(line >= 1 && line <= out.len() + 1, "{f} in\n{text}");
                }
            }
        }
    }

    #[test]
    fn value_parsers_never_panic(s in "[0-9a-fA-F:./x]{0,20}") {
        let _ = s.parse::<PciAddr>();
        let _ = s.parse::<MacAddr>();
        let _ = s.parse::<IpPrefix>();
    }
}
