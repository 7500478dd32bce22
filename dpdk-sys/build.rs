//! Generates the DPDK bindings from the system libdpdk (pkg-config) with bindgen,
//! and compiles bindgen's wrappers for DPDK's static-inline functions (suffix `_w`)
//! plus the tiny shim in `shim.c`.

use std::env;
use std::path::PathBuf;
use std::process::exit;

const SETUP_HINT: &str = "libdpdk not found by pkg-config: run `sudo scripts/setup-host.sh` \
(installs dpdk, dpdk-dev, libdpdk-dev, pkg-config, clang, libclang-dev)";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = match pkg_config::Config::new()
        .cargo_metadata(false)
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(_) => {
            eprintln!("error: {SETUP_HINT}");
            exit(1);
        }
    };

    // The C flags DPDK asks for (`-include rte_config.h -march=...` and include dirs),
    // used both for bindgen's clang and for compiling the wrappers.
    let cflags: Vec<String> = match std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        _ => {
            eprintln!("error: {SETUP_HINT}");
            exit(1);
        }
    };
    // `-include rte_config.h` arrives as two words: keep them together.
    let mut clang_args: Vec<String> = Vec::new();
    let mut it = cflags.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                clang_args.push("-include".into());
                clang_args.push(h.clone());
            }
        } else {
            clang_args.push(f.clone());
        }
    }
    clang_args.push("-DALLOW_EXPERIMENTAL_API".into());
    clang_args.push("-DALLOW_INTERNAL_API".into());

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let wrappers_c = out.join("dpdk_static_wrappers");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("rte_.*|vr_rte_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|rte_.*")
        // Packed headers that contain aligned members cannot be expressed in Rust.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_gtp_psc_type0_hdr")
        .opaque_type("rte_gtp_psc_type1_hdr")
        .opaque_type("port_params")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .clang_macro_fallback()
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers_c)
        .wrap_static_fns_suffix("_w")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .generate();
    let bindings = match bindings {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: bindgen failed on the DPDK headers: {e}");
            exit(1);
        }
    };
    if let Err(e) = bindings.write_to_file(out.join("bindings.rs")) {
        eprintln!("error: writing bindings.rs: {e}");
        exit(1);
    }

    // Compile the generated wrappers and the shim with DPDK's own flags.
    let mut build = cc::Build::new();
    build
        .file(wrappers_c.with_extension("c"))
        .file("shim.c")
        .include(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()))
        .define("ALLOW_EXPERIMENTAL_API", None)
        .define("ALLOW_INTERNAL_API", None)
        .opt_level(3)
        .warnings(false);
    for f in &clang_args {
        build.flag(f);
    }
    build.compile("dpdk_wrappers");

    // Link order: the wrappers first, then DPDK's libraries. `--no-as-needed` keeps
    // librte_* that only the wrappers reference.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    for p in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }
    for l in &lib.libs {
        println!("cargo:rustc-link-lib={l}");
    }
    // Drivers are not in pkg-config's list (EAL loads them as plugins); the bonding
    // driver is linked for its mode-4 API (`rte_eth_bond_8023ad_*`).
    println!("cargo:rustc-link-lib=rte_net_bond");
    println!(
        "cargo:include={}",
        lib.include_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
}
