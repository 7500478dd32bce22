//! `vrouter-dp`: the data-plane daemon.
//!
//! * `vrouter-dp --config FILE` runs the data plane and prints per-port counters
//!   periodically and a summary on exit (SIGINT/SIGTERM stop it cleanly; SIGHUP
//!   re-reads the config file's static forwarding state).
//! * `vrouter-dp` (no `--config`), as root: the kernel-pod demo
//!   ([`vrouter_dp::runtime::demo`]): two pods on tap ports and a kernel VXLAN peer
//!   in network namespaces, ping and iperf3 through the data plane, a summary.
//! * `vrouter-dp demo --null [--duration SECS]`: the no-NIC demo (two `net_null`
//!   ports cross-connected, 10 s).
//! * `vrouter-dp --print-eal-args [--config FILE]` prints the EAL argument vector.
//! * `vrouter-dp --config FILE --stage STAGE` runs one part of the pipeline in
//!   isolation (io, parse, flow, route, encap, decap, full) with a per-second
//!   stats line of per-port Mpps and cycles per packet
//!   ([`vrouter_dp::worker::stage`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pmd_config::Config;
use vrouter_dp::runtime::{self, RunOptions};
use vrouter_dp::worker::stage::Stage;

/// How long the embedded demo runs when no duration is given.
const DEMO_SECONDS: u64 = 10;

#[derive(Parser, Debug)]
#[command(
    name = "vrouter-dp",
    version,
    about = "Userspace vRouter data plane on DPDK"
)]
struct Cli {
    /// Config file (TOML). Without it the kernel-pod demo runs (root); `demo --null`
    /// runs the embedded no-NIC config.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM; 10 for the demo).
    #[arg(long, global = true)]
    duration: Option<f64>,
    /// Stop once traffic was seen and then nothing arrived for this many seconds.
    #[arg(long)]
    until_idle: Option<f64>,
    /// Print the EAL argument vector the config implies, and exit.
    #[arg(long)]
    print_eal_args: bool,
    /// Root of the sysfs/procfs tree (for tests against a fake tree).
    #[arg(long, default_value = "/", global = true)]
    sysfs_root: PathBuf,
    /// No periodic stats lines.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Run only one stage of the pipeline (io, parse, flow, route, encap, decap,
    /// full) on the configured ports and print its stats line every second.
    #[arg(long, value_parser = clap::value_parser!(Stage))]
    stage: Option<Stage>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the host against the config (hugepages, IOMMU, VFIO, NICs, cores) and,
    /// with --apply, prepare it.
    CheckHost {
        /// Prepare the host (reserve hugepages, mount hugetlbfs, bind vfio-pci,
        /// create VFs) instead of only reporting.
        #[arg(long)]
        apply: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The demo: kernel pods in network namespaces and a kernel VXLAN peer, ping
    /// and iperf3 through the data plane (the default without --config).
    Demo {
        /// Run the embedded no-NIC config instead: two net_null ports
        /// cross-connected for 10 s (or --duration).
        #[arg(long)]
        null: bool,
        /// Seconds of each iperf3 run.
        #[arg(long, default_value_t = 3)]
        iperf_secs: u32,
    },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Config::from_toml_str(pmd_config::DEFAULT_CONFIG_TOML)
            .map_err(|e| anyhow::anyhow!("embedded default config: {e}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vrouter-dp: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = load_config(cli.config.as_ref())?;
    if let Some(Command::CheckHost { apply, json }) = cli.command {
        return check_host(&cfg, &cli.sysfs_root, apply, json);
    }
    if cli.print_eal_args {
        let args = pmd_config::eal_args_with_root(&cfg, "vrouter-dp", &cli.sysfs_root)?;
        println!("{}", pmd_config::render_args(&args));
        return Ok(ExitCode::SUCCESS);
    }
    for w in &cfg.warnings {
        eprintln!("vrouter-dp: warning: {w}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let null_demo = matches!(cli.command, Some(Command::Demo { null: true, .. }));
    if cli.config.is_none() && !null_demo {
        let iperf_secs = match cli.command {
            Some(Command::Demo { iperf_secs, .. }) => iperf_secs,
            _ => 3,
        };
        return kernel_demo(iperf_secs, stop);
    }
    let reload = match &cli.config {
        Some(path) => {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&flag))
                .context("installing the SIGHUP handler")?;
            Some(runtime::reload::Reload {
                flag,
                path: path.clone(),
            })
        }
        None => None,
    };
    let duration = match (cli.duration, cli.config.is_none()) {
        (Some(s), _) => Some(Duration::from_secs_f64(s.max(0.0))),
        (None, true) => Some(Duration::from_secs(DEMO_SECONDS)),
        (None, false) => None,
    };
    let opts = RunOptions {
        duration,
        until_idle: cli.until_idle.map(|s| Duration::from_secs_f64(s.max(0.0))),
        // Stage mode prints its line every second, as testpmd's --stats-period=1.
        stats_interval: Some(match cli.stage {
            Some(_) => Duration::from_secs(1),
            None => Duration::from_secs(u64::from(cfg.telemetry.stats_interval_secs.max(1))),
        }),
        verbose: !cli.quiet,
        sysfs_root: cli.sysfs_root.clone(),
        control_api: true,
    };
    match &cli.config {
        Some(p) => println!("vrouter-dp: config {}", p.display()),
        None => println!("vrouter-dp: running the embedded no-NIC demo (net_null)"),
    }
    let eal = runtime::init_eal(&cfg, "vrouter-dp", &cli.sysfs_root).context("starting EAL")?;
    if let Some(st) = cli.stage {
        println!("vrouter-dp: stage mode {st}");
    }
    let summary = runtime::run_stage(&eal, &cfg, &opts, stop, reload, cli.stage)
        .context("running the data plane")?;
    print!("{}", summary.render());
    drop(eal);
    Ok(ExitCode::SUCCESS)
}

fn kernel_demo(iperf_secs: u32, stop: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    use vrouter_dp::runtime::demo::{self, DemoPlan};
    println!("vrouter-dp: no --config given, running the kernel-pod demo");
    let report =
        demo::run_kernel_demo(&DemoPlan::default(), iperf_secs, stop).context("kernel-pod demo")?;
    print!("{}", report.render());
    if report.interrupted {
        return Ok(ExitCode::SUCCESS);
    }
    if !report.passed() {
        anyhow::bail!("kernel-pod demo: some traffic did not get through (see above)");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_host(
    cfg: &Config,
    root: &std::path::Path,
    apply: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (out, passed) = pmd_config::run_check_host(cfg, root, apply, json)?;
    print!("{out}");
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
