//! `vrouterctl`: the operator's CLI over the data plane's control API.
//!
//! Nouns follow Tungsten Fabric's tools: `vif`, `nh`, `rt`, `bridge`, `mpls`, `vxlan`,
//! `flow`, `policy` (each with `list|get|add|del`), `dropstats`, `stats [--watch]`,
//! `info`, `watch`. Output is a human table by default and JSON with `--json`.
//!
//! Exit codes: 0 success; 1 other failure; 2 bad command line; 3 not found;
//! 4 refused (invalid argument, dangling reference, object in use, limit exceeded);
//! 5 cannot reach the data plane (no socket, permission denied).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tokio_stream::StreamExt;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use vrouter_dp::control::client::{self, Client};
use vrouter_dp::control::proto as pb;

#[derive(Parser, Debug)]
#[command(
    name = "vrouterctl",
    version,
    about = "Inspect and program the vrouter-dp data plane"
)]
struct Cli {
    /// The data plane's control socket.
    #[arg(long, short = 's', default_value = pmd_config::DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Interfaces.
    Vif {
        #[command(subcommand)]
        op: VifOp,
    },
    /// Next-hops.
    Nh {
        #[command(subcommand)]
        op: NhOp,
    },
    /// Routes.
    Rt {
        #[command(subcommand)]
        op: RtOp,
    },
    /// Bridge (MAC) entries.
    Bridge {
        #[command(subcommand)]
        op: BridgeOp,
    },
    /// MPLS labels.
    Mpls {
        #[command(subcommand)]
        op: MplsOp,
    },
    /// VXLAN VNIs.
    Vxlan {
        #[command(subcommand)]
        op: VxlanOp,
    },
    /// Flows.
    Flow {
        #[command(subcommand)]
        op: FlowOp,
    },
    /// Interface policy rules.
    Policy {
        #[command(subcommand)]
        op: PolicyOp,
    },
    /// Dropped packets by reason.
    Dropstats,
    /// Per-port and per-worker counters; `--watch` shows live rates.
    Stats {
        /// Refresh and show rates until interrupted.
        #[arg(long, short)]
        watch: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (0: never).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
    /// Version, cores, ports, table sizes and occupancy.
    Info,
    /// Stream link and flow-table pressure events.
    Watch {
        /// Flow-table occupancy (percent) that counts as pressure.
        #[arg(long, default_value_t = 80)]
        percent: u32,
        /// Stop after this many events (0: never).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

#[derive(Subcommand, Debug)]
enum VifOp {
    /// All interfaces.
    List,
    /// One interface.
    Get { id: u32 },
    /// Add or replace an interface; with --vhost-user or --tap, create the pod port too.
    Add(VifAdd),
    /// Delete an interface (with --pod, also the pod port behind it).
    Del {
        id: u32,
        #[arg(long)]
        pod: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum VifType {
    Physical,
    Virtual,
    Host,
    Agent,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum TransportArg {
    Eth,
    Pmd,
    Socket,
}

#[derive(Args, Debug)]
struct VifAdd {
    #[arg(long)]
    id: u32,
    #[arg(long = "type", value_enum, default_value = "virtual")]
    ty: VifType,
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// DPDK port id (ignored with --vhost-user/--tap).
    #[arg(long, default_value_t = 0)]
    port: u32,
    #[arg(long)]
    mac: String,
    #[arg(long, default_value_t = 0)]
    vrf: u32,
    /// An IPv4 or IPv6 address (repeat for more).
    #[arg(long = "ip")]
    ips: Vec<String>,
    #[arg(long, default_value_t = 0)]
    mtu: u32,
    #[arg(long)]
    policy: bool,
    #[arg(long)]
    anti_spoof: bool,
    /// 802.1Q VLAN id (1..=4094) of a physical (fabric) interface.
    #[arg(long, default_value_t = 0)]
    vlan: u32,
    #[arg(long)]
    name: Option<String>,
    /// Create a vhost-user pod port on this socket.
    #[arg(long, conflicts_with = "tap")]
    vhost_user: Option<String>,
    /// The data plane is the vhost-user server.
    #[arg(long)]
    server: bool,
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Create a tap pod port with this name ...
    #[arg(long)]
    tap: Option<String>,
    /// ... in this network namespace.
    #[arg(long, default_value = "")]
    netns: String,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum NhType {
    Discard,
    Receive,
    Encap,
    Tunnel,
    Ecmp,
    Flood,
    VrfTranslate,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum TunnelArg {
    MplsUdp,
    MplsGre,
    Vxlan,
}

#[derive(Subcommand, Debug)]
enum NhOp {
    List,
    Get {
        id: u32,
    },
    Add {
        #[arg(long)]
        id: u32,
        #[arg(long = "type", value_enum)]
        ty: NhType,
        #[arg(long, default_value_t = 0)]
        vif: u32,
        #[arg(long, default_value = "")]
        dmac: String,
        #[arg(long, value_enum)]
        tunnel: Option<TunnelArg>,
        #[arg(long, default_value = "")]
        src: String,
        #[arg(long, default_value = "")]
        dst: String,
        /// A composite member `NH[:LABEL]` (repeat for more).
        #[arg(long = "member")]
        members: Vec<String>,
        #[arg(long, default_value_t = 0)]
        vrf: u32,
    },
    Del {
        id: u32,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FamilyArg {
    Inet,
    Inet6,
}

#[derive(Subcommand, Debug)]
enum RtOp {
    List {
        #[arg(long)]
        vrf: Option<u32>,
        #[arg(long, value_enum)]
        family: Option<FamilyArg>,
        /// Only routes inside this prefix.
        #[arg(long, default_value = "")]
        within: String,
        #[arg(long, default_value_t = 0)]
        limit: u64,
    },
    Get {
        #[arg(long, default_value_t = 0)]
        vrf: u32,
        prefix: String,
    },
    Add {
        #[arg(long, default_value_t = 0)]
        vrf: u32,
        prefix: String,
        #[arg(long)]
        nh: u32,
        #[arg(long)]
        label: Option<u32>,
    },
    Del {
        #[arg(long, default_value_t = 0)]
        vrf: u32,
        prefix: String,
    },
}

#[derive(Subcommand, Debug)]
enum BridgeOp {
    List {
        #[arg(long)]
        vrf: Option<u32>,
    },
    Get {
        #[arg(long, default_value_t = 0)]
        vrf: u32,
        mac: String,
    },
    Add {
        #[arg(long, default_value_t = 0)]
        vrf: u32,
        mac: String,
        #[arg(long)]
        nh: u32,
        #[arg(long)]
        label: Option<u32>,
    },
    Del {
        #[arg(long, default_value_t = 0)]
        vrf: u32,
        mac: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum PayloadArg {
    Ip,
    Ethernet,
}

#[derive(Subcommand, Debug)]
enum MplsOp {
    List,
    Get {
        label: u32,
    },
    Add {
        label: u32,
        #[arg(long)]
        nh: u32,
        #[arg(long, value_enum, default_value = "ip")]
        payload: PayloadArg,
    },
    Del {
        label: u32,
    },
}

#[derive(Subcommand, Debug)]
enum VxlanOp {
    List,
    Get {
        vni: u32,
    },
    Add {
        vni: u32,
        #[arg(long)]
        nh: u32,
    },
    Del {
        vni: u32,
    },
}

#[derive(Args, Debug, Clone)]
struct FlowKeyArgs {
    /// Slot index instead of the key.
    #[arg(long)]
    index: Option<u32>,
    #[arg(long, default_value_t = 0)]
    vrf: u32,
    #[arg(long, default_value = "")]
    src: String,
    #[arg(long, default_value = "")]
    dst: String,
    /// tcp, udp, icmp, icmp6 or a number.
    #[arg(long, default_value = "0")]
    proto: String,
    #[arg(long, default_value_t = 0)]
    sport: u32,
    #[arg(long, default_value_t = 0)]
    dport: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FlowActionArg {
    Drop,
    Hold,
    Forward,
}

#[derive(Subcommand, Debug)]
enum FlowOp {
    List {
        #[arg(long)]
        vrf: Option<u32>,
        #[arg(long, default_value = "")]
        src: String,
        #[arg(long, default_value = "")]
        dst: String,
        #[arg(long)]
        proto: Option<String>,
        #[arg(long)]
        port: Option<u32>,
        #[arg(long, default_value_t = 0)]
        limit: u64,
    },
    Get(FlowKeyArgs),
    Add {
        #[command(flatten)]
        key: FlowKeyArgs,
        #[arg(long, value_enum, default_value = "forward")]
        action: FlowActionArg,
        #[arg(long, default_value_t = 0)]
        nh: u32,
    },
    Del(FlowKeyArgs),
    /// Remove every flow.
    Clear,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum RuleAction {
    Allow,
    Deny,
}

#[derive(Subcommand, Debug)]
enum PolicyOp {
    List,
    Get {
        vif: u32,
    },
    /// Append a rule (or insert it at --index).
    Add {
        vif: u32,
        #[arg(long, value_enum)]
        action: RuleAction,
        #[arg(long)]
        proto: Option<String>,
        #[arg(long, default_value = "")]
        src: String,
        #[arg(long, default_value = "")]
        dst: String,
        /// Port or range `LO-HI`.
        #[arg(long)]
        sport: Option<String>,
        #[arg(long)]
        dport: Option<String>,
        #[arg(long)]
        index: Option<usize>,
    },
    /// Remove rule `index`.
    Del {
        vif: u32,
        index: usize,
    },
}

/// A failure with its exit code.
struct Fail {
    code: u8,
    msg: String,
}

impl From<Status> for Fail {
    fn from(s: Status) -> Self {
        let code = match s.code() {
            Code::NotFound => 3,
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::ResourceExhausted
            | Code::OutOfRange => 4,
            Code::Unavailable | Code::PermissionDenied | Code::Unauthenticated => 5,
            _ => 1,
        };
        let mut msg = s.message().to_owned();
        if let Some(br) = s.get_details_bad_request() {
            if br.field_violations.len() > 1 {
                for v in &br.field_violations {
                    msg.push_str(&format!("\n  {}: {}", v.field, v.description));
                }
            }
        }
        Fail { code, msg }
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail {
        code: 2,
        msg: msg.into(),
    }
}

type Res<T = ()> = Result<T, Fail>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vrouterctl: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("vrouterctl: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli) -> Res {
    let mut c = client::connect(&cli.socket).await.map_err(|e| {
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        let mut detail = String::new();
        while let Some(s) = src {
            detail = s.to_string();
            src = s.source();
        }
        Fail {
            code: 5,
            msg: format!("cannot connect to {}: {detail}", cli.socket.display()),
        }
    })?;
    let out = Out { json: cli.json };
    match cli.cmd {
        Cmd::Vif { op } => vif(&mut c, &out, op).await,
        Cmd::Nh { op } => nh(&mut c, &out, op).await,
        Cmd::Rt { op } => rt(&mut c, &out, op).await,
        Cmd::Bridge { op } => bridge(&mut c, &out, op).await,
        Cmd::Mpls { op } => mpls(&mut c, &out, op).await,
        Cmd::Vxlan { op } => vxlan(&mut c, &out, op).await,
        Cmd::Flow { op } => flow(&mut c, &out, op).await,
        Cmd::Policy { op } => policy(&mut c, &out, op).await,
        Cmd::Dropstats => {
            let s = c.get_stats(pb::GetStatsRequest {}).await?.into_inner();
            if out.json {
                return out.print_json(&s.drops);
            }
            let rows = s
                .drops
                .iter()
                .map(|d| vec![d.reason.clone(), d.packets.to_string()])
                .collect();
            out.table(&["REASON", "PACKETS"], rows);
            Ok(())
        }
        Cmd::Stats {
            watch,
            interval,
            count,
        } => stats(&mut c, &out, watch, interval, count).await,
        Cmd::Info => {
            let i = c.get_info(pb::GetInfoRequest {}).await?.into_inner();
            if out.json {
                return out.print_json(&i);
            }
            println!("version      {}", i.version);
            if !i.build.is_empty() {
                println!("build        {}", i.build);
            }
            println!("control core {}", i.control_core);
            println!("worker cores {:?}", i.worker_cores);
            println!("generation   {}", i.generation);
            println!("uptime       {}s", i.uptime_secs);
            println!("max batch    {}", i.api_max_batch);
            println!();
            let rows = i
                .ports
                .iter()
                .map(|p| {
                    vec![
                        p.port.to_string(),
                        p.name.clone(),
                        p.device.clone(),
                        updown(p.link_up).into(),
                        p.rx_queues.to_string(),
                        p.tx_queues.to_string(),
                    ]
                })
                .collect();
            out.table(&["PORT", "NAME", "DEVICE", "LINK", "RXQ", "TXQ"], rows);
            println!();
            let rows = i
                .tables
                .iter()
                .map(|t| {
                    let cap = if t.capacity == 0 {
                        "-".to_owned()
                    } else {
                        t.capacity.to_string()
                    };
                    vec![t.name.clone(), t.used.to_string(), cap]
                })
                .collect();
            out.table(&["TABLE", "USED", "CAPACITY"], rows);
            Ok(())
        }
        Cmd::Watch { percent, count } => {
            let mut s = c
                .watch(pb::WatchRequest {
                    flow_pressure_percent: percent,
                })
                .await?
                .into_inner();
            let mut n = 0;
            while let Some(ev) = s.next().await {
                let ev = ev?;
                if out.json {
                    println!("{}", serde_json::to_string(&ev).unwrap_or_default());
                } else {
                    match ev.kind {
                        Some(pb::event::Kind::Link(l)) => println!(
                            "link port {} ({}){} {}",
                            l.port,
                            l.name,
                            if l.vif_valid {
                                format!(" vif {}", l.vif)
                            } else {
                                String::new()
                            },
                            updown(l.up)
                        ),
                        Some(pb::event::Kind::FlowPressure(f)) => println!(
                            "flow table {}% full ({}/{}){}",
                            f.percent,
                            f.entries,
                            f.capacity,
                            if f.high { "" } else { ", back to normal" }
                        ),
                        None => {}
                    }
                }
                let _ = std::io::stdout().flush();
                n += 1;
                if count > 0 && n >= count {
                    break;
                }
            }
            Ok(())
        }
    }
}

struct Out {
    json: bool,
}

impl Out {
    fn print_json<T: Serialize + ?Sized>(&self, v: &T) -> Res {
        let s = serde_json::to_string_pretty(v).map_err(|e| Fail {
            code: 1,
            msg: e.to_string(),
        })?;
        println!("{s}");
        Ok(())
    }

    fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) {
        let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(x) = w.get_mut(i) {
                    *x = (*x).max(c.len());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let width = w.get(i).copied().unwrap_or(0);
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<width$}  "));
                }
            }
            println!("{}", s.trim_end());
        };
        line(headers.to_vec());
        for r in &rows {
            line(r.iter().map(String::as_str).collect());
        }
    }
}

fn updown(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

async fn apply(c: &mut Client, changes: Vec<pb::change::Op>) -> Res<pb::ApplyResponse> {
    let batch = pb::Batch {
        changes: changes
            .into_iter()
            .map(|op| pb::Change { op: Some(op) })
            .collect(),
    };
    Ok(c.apply(batch).await?.into_inner())
}

fn done(out: &Out, r: &pb::ApplyResponse) -> Res {
    if out.json {
        out.print_json(r)
    } else {
        println!("ok (generation {})", r.generation);
        Ok(())
    }
}

macro_rules! collect_pages {
    ($stream:expr, $field:ident) => {{
        let mut s = $stream.into_inner();
        let mut v = Vec::new();
        while let Some(p) = s.next().await {
            v.extend(p?.$field);
        }
        v
    }};
}

fn vif_type_name(t: i32) -> &'static str {
    match pb::InterfaceType::try_from(t) {
        Ok(pb::InterfaceType::VifTypePhysical) => "physical",
        Ok(pb::InterfaceType::VifTypeVirtual) => "virtual",
        Ok(pb::InterfaceType::VifTypeHost) => "host",
        Ok(pb::InterfaceType::VifTypeAgent) => "agent",
        _ => "?",
    }
}

fn transport_name(t: i32) -> &'static str {
    match pb::Transport::try_from(t) {
        Ok(pb::Transport::Eth) => "eth",
        Ok(pb::Transport::Pmd) => "pmd",
        Ok(pb::Transport::Socket) => "socket",
        _ => "-",
    }
}

fn vif_rows(vs: &[pb::Interface]) -> Vec<Vec<String>> {
    vs.iter()
        .map(|v| {
            let c = v.counters.unwrap_or_default();
            let mut ips = v.ipv4.clone();
            ips.extend(v.ipv6.iter().cloned());
            vec![
                v.id.to_string(),
                vif_type_name(v.r#type).into(),
                transport_name(v.transport).into(),
                v.name.clone(),
                v.port.to_string(),
                v.mac.clone(),
                v.vrf.to_string(),
                v.mtu.to_string(),
                match v.vlan {
                    0 => "-".into(),
                    n => n.to_string(),
                },
                if v.policy { "P" } else { "-" }.into(),
                updown(v.link_up).into(),
                c.rx_packets.to_string(),
                c.tx_packets.to_string(),
                ips.join(","),
            ]
        })
        .collect()
}

const VIF_HEADERS: &[&str] = &[
    "VIF",
    "TYPE",
    "TRANSPORT",
    "NAME",
    "PORT",
    "MAC",
    "VRF",
    "MTU",
    "VLAN",
    "FLAGS",
    "LINK",
    "RX_PKTS",
    "TX_PKTS",
    "ADDRESSES",
];

async fn vif(c: &mut Client, out: &Out, op: VifOp) -> Res {
    match op {
        VifOp::List => {
            let v = collect_pages!(
                c.dump_interfaces(pb::DumpRequest::default()).await?,
                interfaces
            );
            if out.json {
                return out.print_json(&v);
            }
            out.table(VIF_HEADERS, vif_rows(&v));
            Ok(())
        }
        VifOp::Get { id } => {
            let v = c.get_interface(pb::InterfaceKey { id }).await?.into_inner();
            if out.json {
                return out.print_json(&v);
            }
            out.table(VIF_HEADERS, vif_rows(&[v]));
            Ok(())
        }
        VifOp::Add(a) => {
            let (ipv4, ipv6): (Vec<String>, Vec<String>) =
                a.ips.iter().cloned().partition(|s| !s.contains(':'));
            let transport = match (a.transport, &a.vhost_user, &a.tap) {
                (Some(TransportArg::Eth), _, _) => pb::Transport::Eth,
                (Some(TransportArg::Pmd), _, _) => pb::Transport::Pmd,
                (Some(TransportArg::Socket), _, _) => pb::Transport::Socket,
                (None, _, Some(_)) => pb::Transport::Eth,
                (None, _, None) => pb::Transport::Pmd,
            };
            let iface = pb::Interface {
                id: a.id,
                r#type: match a.ty {
                    VifType::Physical => pb::InterfaceType::VifTypePhysical,
                    VifType::Virtual => pb::InterfaceType::VifTypeVirtual,
                    VifType::Host => pb::InterfaceType::VifTypeHost,
                    VifType::Agent => pb::InterfaceType::VifTypeAgent,
                } as i32,
                transport: transport as i32,
                name: a.name.clone().unwrap_or_default(),
                port: a.port,
                mac: a.mac.clone(),
                vrf: a.vrf,
                ipv4,
                ipv6,
                mtu: a.mtu,
                policy: a.policy,
                anti_spoof: a.anti_spoof,
                link_up: false,
                counters: None,
                vlan: a.vlan,
            };
            let backend = if let Some(s) = a.vhost_user {
                Some(pb::add_pod_port_request::Backend::VhostUser(
                    pb::VhostUserBackend {
                        socket_path: s,
                        server: a.server,
                        queues: a.queues,
                    },
                ))
            } else {
                a.tap.map(|name| {
                    pb::add_pod_port_request::Backend::Tap(pb::TapBackend {
                        name,
                        netns: a.netns,
                    })
                })
            };
            if let Some(b) = backend {
                let v = c
                    .add_pod_port(pb::AddPodPortRequest {
                        interface: Some(iface),
                        backend: Some(b),
                    })
                    .await?
                    .into_inner();
                if out.json {
                    return out.print_json(&v);
                }
                println!("ok (vif {} on port {})", v.id, v.port);
                return Ok(());
            }
            let r = apply(c, vec![pb::change::Op::AddInterface(iface)]).await?;
            done(out, &r)
        }
        VifOp::Del { id, pod } => {
            if pod {
                c.del_pod_port(pb::InterfaceKey { id }).await?;
                if out.json {
                    return out.print_json(&serde_json::json!({"deleted": id}));
                }
                println!("ok");
                return Ok(());
            }
            let r = apply(
                c,
                vec![pb::change::Op::DelInterface(pb::InterfaceKey { id })],
            )
            .await?;
            done(out, &r)
        }
    }
}

fn nh_type_name(n: &pb::NextHop) -> String {
    match pb::NextHopType::try_from(n.r#type) {
        Ok(pb::NextHopType::NhTypeDiscard) => "discard".into(),
        Ok(pb::NextHopType::NhTypeReceive) => "receive".into(),
        Ok(pb::NextHopType::NhTypeEncap) => "encap".into(),
        Ok(pb::NextHopType::NhTypeTunnel) => match pb::TunnelType::try_from(n.tunnel) {
            Ok(pb::TunnelType::TunnelMplsUdp) => "tunnel/mpls-udp".into(),
            Ok(pb::TunnelType::TunnelMplsGre) => "tunnel/mpls-gre".into(),
            Ok(pb::TunnelType::TunnelVxlan) => "tunnel/vxlan".into(),
            _ => "tunnel".into(),
        },
        Ok(pb::NextHopType::NhTypeComposite) => {
            if n.composite == pb::CompositeType::CompositeFlood as i32 {
                "flood".into()
            } else {
                "ecmp".into()
            }
        }
        Ok(pb::NextHopType::NhTypeVrfTranslate) => "vrf-translate".into(),
        _ => "?".into(),
    }
}

fn nh_rows(v: &[pb::NextHop]) -> Vec<Vec<String>> {
    v.iter()
        .map(|n| {
            let detail = match pb::NextHopType::try_from(n.r#type) {
                Ok(pb::NextHopType::NhTypeReceive) => format!("vif {}", n.vif),
                Ok(pb::NextHopType::NhTypeEncap) => format!("vif {} dmac {}", n.vif, n.dmac),
                Ok(pb::NextHopType::NhTypeTunnel) => format!(
                    "{} -> {} via vif {} dmac {}",
                    n.tunnel_src, n.tunnel_dst, n.vif, n.dmac
                ),
                Ok(pb::NextHopType::NhTypeComposite) => n
                    .members
                    .iter()
                    .map(|m| {
                        if m.label_valid {
                            format!("{}:{}", m.nh, m.label)
                        } else {
                            m.nh.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                Ok(pb::NextHopType::NhTypeVrfTranslate) => format!("vrf {}", n.vrf),
                _ => String::new(),
            };
            vec![n.id.to_string(), nh_type_name(n), detail]
        })
        .collect()
}

async fn nh(c: &mut Client, out: &Out, op: NhOp) -> Res {
    match op {
        NhOp::List => {
            let v = collect_pages!(
                c.dump_next_hops(pb::DumpRequest::default()).await?,
                nexthops
            );
            if out.json {
                return out.print_json(&v);
            }
            out.table(&["NH", "TYPE", "DETAIL"], nh_rows(&v));
            Ok(())
        }
        NhOp::Get { id } => {
            let n = c.get_next_hop(pb::NextHopKey { id }).await?.into_inner();
            if out.json {
                return out.print_json(&n);
            }
            out.table(&["NH", "TYPE", "DETAIL"], nh_rows(&[n]));
            Ok(())
        }
        NhOp::Add {
            id,
            ty,
            vif,
            dmac,
            tunnel,
            src,
            dst,
            members,
            vrf,
        } => {
            let mut m = pb::NextHop {
                id,
                vif,
                dmac,
                tunnel_src: src,
                tunnel_dst: dst,
                vrf,
                ..Default::default()
            };
            m.r#type = match ty {
                NhType::Discard => pb::NextHopType::NhTypeDiscard,
                NhType::Receive => pb::NextHopType::NhTypeReceive,
                NhType::Encap => pb::NextHopType::NhTypeEncap,
                NhType::Tunnel => pb::NextHopType::NhTypeTunnel,
                NhType::Ecmp | NhType::Flood => pb::NextHopType::NhTypeComposite,
                NhType::VrfTranslate => pb::NextHopType::NhTypeVrfTranslate,
            } as i32;
            m.composite = match ty {
                NhType::Ecmp => pb::CompositeType::CompositeEcmp as i32,
                NhType::Flood => pb::CompositeType::CompositeFlood as i32,
                _ => 0,
            };
            m.tunnel = match tunnel {
                None => 0,
                Some(TunnelArg::MplsUdp) => pb::TunnelType::TunnelMplsUdp as i32,
                Some(TunnelArg::MplsGre) => pb::TunnelType::TunnelMplsGre as i32,
                Some(TunnelArg::Vxlan) => pb::TunnelType::TunnelVxlan as i32,
            };
            for s in members {
                let (n, l) = match s.split_once(':') {
                    Some((n, l)) => (n, Some(l)),
                    None => (s.as_str(), None),
                };
                let nh = n
                    .parse()
                    .map_err(|_| usage(format!("--member {s}: {n:?} is not a next-hop id")))?;
                let label = match l {
                    Some(l) => Some(
                        l.parse()
                            .map_err(|_| usage(format!("--member {s}: {l:?} is not a label")))?,
                    ),
                    None => None,
                };
                m.members.push(pb::CompositeMember {
                    nh,
                    label: label.unwrap_or(0),
                    label_valid: label.is_some(),
                });
            }
            let r = apply(c, vec![pb::change::Op::AddNexthop(m)]).await?;
            done(out, &r)
        }
        NhOp::Del { id } => {
            let r = apply(c, vec![pb::change::Op::DelNexthop(pb::NextHopKey { id })]).await?;
            done(out, &r)
        }
    }
}

fn route_rows(v: &[pb::Route]) -> Vec<Vec<String>> {
    v.iter()
        .map(|r| {
            vec![
                r.vrf.to_string(),
                r.prefix.clone(),
                r.nh.to_string(),
                if r.label_valid {
                    r.label.to_string()
                } else {
                    "-".into()
                },
            ]
        })
        .collect()
}

async fn rt(c: &mut Client, out: &Out, op: RtOp) -> Res {
    match op {
        RtOp::List {
            vrf,
            family,
            within,
            limit,
        } => {
            let req = pb::DumpRoutesRequest {
                vrf: vrf.unwrap_or(0),
                all_vrfs: vrf.is_none(),
                family: match family {
                    None => pb::Family::Any,
                    Some(FamilyArg::Inet) => pb::Family::Inet,
                    Some(FamilyArg::Inet6) => pb::Family::Inet6,
                } as i32,
                within,
                marker: String::new(),
                page_size: 0,
                limit,
            };
            let v = collect_pages!(c.dump_routes(req).await?, routes);
            if out.json {
                return out.print_json(&v);
            }
            out.table(&["VRF", "PREFIX", "NH", "LABEL"], route_rows(&v));
            Ok(())
        }
        RtOp::Get { vrf, prefix } => {
            let r = c
                .get_route(pb::RouteKey { vrf, prefix })
                .await?
                .into_inner();
            if out.json {
                return out.print_json(&r);
            }
            out.table(&["VRF", "PREFIX", "NH", "LABEL"], route_rows(&[r]));
            Ok(())
        }
        RtOp::Add {
            vrf,
            prefix,
            nh,
            label,
        } => {
            let r = apply(
                c,
                vec![pb::change::Op::AddRoute(pb::Route {
                    vrf,
                    prefix,
                    nh,
                    label: label.unwrap_or(0),
                    label_valid: label.is_some(),
                })],
            )
            .await?;
            done(out, &r)
        }
        RtOp::Del { vrf, prefix } => {
            let r = apply(
                c,
                vec![pb::change::Op::DelRoute(pb::RouteKey { vrf, prefix })],
            )
            .await?;
            done(out, &r)
        }
    }
}

async fn bridge(c: &mut Client, out: &Out, op: BridgeOp) -> Res {
    let rows = |v: &[pb::BridgeEntry]| -> Vec<Vec<String>> {
        v.iter()
            .map(|e| {
                vec![
                    e.vrf.to_string(),
                    e.mac.clone(),
                    e.nh.to_string(),
                    if e.label_valid {
                        e.label.to_string()
                    } else {
                        "-".into()
                    },
                ]
            })
            .collect()
    };
    const H: &[&str] = &["VRF", "MAC", "NH", "LABEL"];
    match op {
        BridgeOp::List { vrf } => {
            let v = collect_pages!(
                c.dump_bridge_entries(pb::DumpBridgeRequest {
                    vrf: vrf.unwrap_or(0),
                    all_vrfs: vrf.is_none(),
                    page_size: 0,
                })
                .await?,
                entries
            );
            if out.json {
                return out.print_json(&v);
            }
            out.table(H, rows(&v));
            Ok(())
        }
        BridgeOp::Get { vrf, mac } => {
            let e = c
                .get_bridge_entry(pb::BridgeKey { vrf, mac })
                .await?
                .into_inner();
            if out.json {
                return out.print_json(&e);
            }
            out.table(H, rows(&[e]));
            Ok(())
        }
        BridgeOp::Add {
            vrf,
            mac,
            nh,
            label,
        } => {
            let r = apply(
                c,
                vec![pb::change::Op::AddBridge(pb::BridgeEntry {
                    vrf,
                    mac,
                    nh,
                    label: label.unwrap_or(0),
                    label_valid: label.is_some(),
                })],
            )
            .await?;
            done(out, &r)
        }
        BridgeOp::Del { vrf, mac } => {
            let r = apply(
                c,
                vec![pb::change::Op::DelBridge(pb::BridgeKey { vrf, mac })],
            )
            .await?;
            done(out, &r)
        }
    }
}

async fn mpls(c: &mut Client, out: &Out, op: MplsOp) -> Res {
    let rows = |v: &[pb::MplsLabel]| -> Vec<Vec<String>> {
        v.iter()
            .map(|l| {
                let p = if l.payload == pb::Payload::Ethernet as i32 {
                    "ethernet"
                } else {
                    "ip"
                };
                vec![l.label.to_string(), l.nh.to_string(), p.into()]
            })
            .collect()
    };
    const H: &[&str] = &["LABEL", "NH", "PAYLOAD"];
    match op {
        MplsOp::List => {
            let v = collect_pages!(
                c.dump_mpls_labels(pb::DumpRequest::default()).await?,
                labels
            );
            if out.json {
                return out.print_json(&v);
            }
            out.table(H, rows(&v));
            Ok(())
        }
        MplsOp::Get { label } => {
            let l = c
                .get_mpls_label(pb::MplsLabelKey { label })
                .await?
                .into_inner();
            if out.json {
                return out.print_json(&l);
            }
            out.table(H, rows(&[l]));
            Ok(())
        }
        MplsOp::Add { label, nh, payload } => {
            let payload = match payload {
                PayloadArg::Ip => pb::Payload::Ip,
                PayloadArg::Ethernet => pb::Payload::Ethernet,
            } as i32;
            let r = apply(
                c,
                vec![pb::change::Op::AddMplsLabel(pb::MplsLabel {
                    label,
                    nh,
                    payload,
                })],
            )
            .await?;
            done(out, &r)
        }
        MplsOp::Del { label } => {
            let r = apply(
                c,
                vec![pb::change::Op::DelMplsLabel(pb::MplsLabelKey { label })],
            )
            .await?;
            done(out, &r)
        }
    }
}

async fn vxlan(c: &mut Client, out: &Out, op: VxlanOp) -> Res {
    let rows = |v: &[pb::Vxlan]| -> Vec<Vec<String>> {
        v.iter()
            .map(|x| vec![x.vni.to_string(), x.nh.to_string()])
            .collect()
    };
    match op {
        VxlanOp::List => {
            let v = collect_pages!(c.dump_vxlans(pb::DumpRequest::default()).await?, vxlans);
            if out.json {
                return out.print_json(&v);
            }
            out.table(&["VNI", "NH"], rows(&v));
            Ok(())
        }
        VxlanOp::Get { vni } => {
            let x = c.get_vxlan(pb::VxlanKey { vni }).await?.into_inner();
            if out.json {
                return out.print_json(&x);
            }
            out.table(&["VNI", "NH"], rows(&[x]));
            Ok(())
        }
        VxlanOp::Add { vni, nh } => {
            let r = apply(c, vec![pb::change::Op::AddVxlan(pb::Vxlan { vni, nh })]).await?;
            done(out, &r)
        }
        VxlanOp::Del { vni } => {
            let r = apply(c, vec![pb::change::Op::DelVxlan(pb::VxlanKey { vni })]).await?;
            done(out, &r)
        }
    }
}

fn proto_num(s: &str) -> Res<u32> {
    Ok(match s {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmp6" | "icmpv6" => 58,
        n => n.parse().map_err(|_| {
            usage(format!(
                "{s:?} is not a protocol (tcp, udp, icmp, icmp6 or a number)"
            ))
        })?,
    })
}

fn flow_key(k: &FlowKeyArgs) -> Res<pb::FlowKey> {
    Ok(pb::FlowKey {
        vrf: k.vrf,
        src: k.src.clone(),
        dst: k.dst.clone(),
        proto: proto_num(&k.proto)?,
        sport: k.sport,
        dport: k.dport,
        by_index: k.index.is_some(),
        index: k.index.unwrap_or(0),
    })
}

fn flow_rows(v: &[pb::Flow]) -> Vec<Vec<String>> {
    v.iter()
        .map(|f| {
            let k = f.key.clone().unwrap_or_default();
            let action = match pb::FlowAction::try_from(f.action) {
                Ok(pb::FlowAction::FlowDrop) => "drop",
                Ok(pb::FlowAction::FlowHold) => "hold",
                Ok(pb::FlowAction::FlowForward) => "forward",
                Ok(pb::FlowAction::FlowNat) => "nat",
                Ok(pb::FlowAction::FlowMirror) => "mirror",
                Err(_) => "?",
            };
            vec![
                f.index.to_string(),
                k.vrf.to_string(),
                format!("{}:{}", k.src, k.sport),
                format!("{}:{}", k.dst, k.dport),
                k.proto.to_string(),
                action.into(),
                f.nh.to_string(),
                if f.reverse_valid {
                    f.reverse.to_string()
                } else {
                    "-".into()
                },
                f.packets.to_string(),
                f.bytes.to_string(),
            ]
        })
        .collect()
}

const FLOW_HEADERS: &[&str] = &[
    "INDEX",
    "VRF",
    "SOURCE",
    "DESTINATION",
    "PROTO",
    "ACTION",
    "NH",
    "REVERSE",
    "PACKETS",
    "BYTES",
];

async fn flow(c: &mut Client, out: &Out, op: FlowOp) -> Res {
    match op {
        FlowOp::List {
            vrf,
            src,
            dst,
            proto,
            port,
            limit,
        } => {
            let proto = match proto {
                Some(p) => Some(proto_num(&p)?),
                None => None,
            };
            let v = collect_pages!(
                c.dump_flows(pb::DumpFlowsRequest {
                    vrf: vrf.unwrap_or(0),
                    match_vrf: vrf.is_some(),
                    src,
                    dst,
                    proto: proto.unwrap_or(0),
                    match_proto: proto.is_some(),
                    port: port.unwrap_or(0),
                    match_port: port.is_some(),
                    page_size: 0,
                    limit,
                    ..Default::default()
                })
                .await?,
                flows
            );
            if out.json {
                return out.print_json(&v);
            }
            out.table(FLOW_HEADERS, flow_rows(&v));
            Ok(())
        }
        FlowOp::Get(k) => {
            let f = c.get_flow(flow_key(&k)?).await?.into_inner();
            if out.json {
                return out.print_json(&f);
            }
            out.table(FLOW_HEADERS, flow_rows(&[f]));
            Ok(())
        }
        FlowOp::Add { key, action, nh } => {
            let f = pb::Flow {
                key: Some(flow_key(&key)?),
                action: match action {
                    FlowActionArg::Drop => pb::FlowAction::FlowDrop,
                    FlowActionArg::Hold => pb::FlowAction::FlowHold,
                    FlowActionArg::Forward => pb::FlowAction::FlowForward,
                } as i32,
                nh,
                ..Default::default()
            };
            let f = c.add_flow(f).await?.into_inner();
            if out.json {
                return out.print_json(&f);
            }
            out.table(FLOW_HEADERS, flow_rows(&[f]));
            Ok(())
        }
        FlowOp::Del(k) => {
            let f = c.del_flow(flow_key(&k)?).await?.into_inner();
            if out.json {
                return out.print_json(&f);
            }
            println!("ok (flow {} removed)", f.index);
            Ok(())
        }
        FlowOp::Clear => {
            let r = c.clear_flows(pb::ClearFlowsRequest {}).await?.into_inner();
            if out.json {
                return out.print_json(&r);
            }
            println!("ok ({} flows removed)", r.removed);
            Ok(())
        }
    }
}

fn port_range(s: &Option<String>) -> Res<(u32, u32)> {
    let Some(s) = s else { return Ok((0, 0)) };
    let p = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| usage(format!("{s:?} is not a port or LO-HI range")))
    };
    match s.split_once('-') {
        Some((a, b)) => Ok((p(a)?, p(b)?)),
        None => {
            let v = p(s)?;
            Ok((v, v))
        }
    }
}

fn rule_rows(p: &pb::Policy) -> Vec<Vec<String>> {
    p.rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let range = |lo: u32, hi: u32| match (lo, hi) {
                (0, 0) => "any".to_owned(),
                (a, b) if a == b => a.to_string(),
                (a, b) => format!("{a}-{b}"),
            };
            let any = |s: &str| {
                if s.is_empty() {
                    "any".to_owned()
                } else {
                    s.to_owned()
                }
            };
            vec![
                p.vif.to_string(),
                i.to_string(),
                if r.action == pb::PolicyAction::PolicyAllow as i32 {
                    "allow"
                } else {
                    "deny"
                }
                .into(),
                if r.proto == 0 {
                    "any".into()
                } else {
                    r.proto.to_string()
                },
                any(&r.src),
                range(r.sport_lo, r.sport_hi),
                any(&r.dst),
                range(r.dport_lo, r.dport_hi),
            ]
        })
        .collect()
}

const RULE_HEADERS: &[&str] = &[
    "VIF",
    "RULE",
    "ACTION",
    "PROTO",
    "SOURCE",
    "SPORT",
    "DESTINATION",
    "DPORT",
];

async fn policy(c: &mut Client, out: &Out, op: PolicyOp) -> Res {
    match op {
        PolicyOp::List => {
            let v = collect_pages!(c.dump_policies(pb::DumpRequest::default()).await?, policies);
            if out.json {
                return out.print_json(&v);
            }
            out.table(RULE_HEADERS, v.iter().flat_map(rule_rows).collect());
            Ok(())
        }
        PolicyOp::Get { vif } => {
            let p = c
                .get_policy(pb::InterfaceKey { id: vif })
                .await?
                .into_inner();
            if out.json {
                return out.print_json(&p);
            }
            out.table(RULE_HEADERS, rule_rows(&p));
            Ok(())
        }
        PolicyOp::Add {
            vif,
            action,
            proto,
            src,
            dst,
            sport,
            dport,
            index,
        } => {
            let mut p = c
                .get_policy(pb::InterfaceKey { id: vif })
                .await?
                .into_inner();
            let (sport_lo, sport_hi) = port_range(&sport)?;
            let (dport_lo, dport_hi) = port_range(&dport)?;
            let rule = pb::PolicyRule {
                action: match action {
                    RuleAction::Allow => pb::PolicyAction::PolicyAllow,
                    RuleAction::Deny => pb::PolicyAction::PolicyDeny,
                } as i32,
                proto: match proto {
                    Some(p) => proto_num(&p)?,
                    None => 0,
                },
                src,
                dst,
                sport_lo,
                sport_hi,
                dport_lo,
                dport_hi,
            };
            let at = index.unwrap_or(p.rules.len()).min(p.rules.len());
            p.rules.insert(at, rule);
            let r = apply(c, vec![pb::change::Op::SetPolicy(p)]).await?;
            done(out, &r)
        }
        PolicyOp::Del { vif, index } => {
            let mut p = c
                .get_policy(pb::InterfaceKey { id: vif })
                .await?
                .into_inner();
            if index >= p.rules.len() {
                return Err(Fail {
                    code: 3,
                    msg: format!("vif {vif} has no rule {index} ({} rules)", p.rules.len()),
                });
            }
            p.rules.remove(index);
            let r = apply(c, vec![pb::change::Op::SetPolicy(p)]).await?;
            done(out, &r)
        }
    }
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 / secs
}

fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

async fn stats(c: &mut Client, out: &Out, watch: bool, interval: f64, count: u64) -> Res {
    if !watch {
        let s = c.get_stats(pb::GetStatsRequest {}).await?.into_inner();
        if out.json {
            return out.print_json(&s);
        }
        let rows = s
            .ports
            .iter()
            .map(|p| {
                vec![
                    p.port.to_string(),
                    p.name.clone(),
                    updown(p.link_up).into(),
                    p.rx_packets.to_string(),
                    p.rx_bytes.to_string(),
                    p.tx_packets.to_string(),
                    p.tx_bytes.to_string(),
                    p.rx_missed.to_string(),
                    (p.rx_errors + p.tx_errors).to_string(),
                    p.tx_dropped.to_string(),
                ]
            })
            .collect();
        out.table(
            &[
                "PORT", "NAME", "LINK", "RX_PKTS", "RX_BYTES", "TX_PKTS", "TX_BYTES", "MISSED",
                "ERRORS", "TX_DROP",
            ],
            rows,
        );
        println!();
        let rows = s
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.lcore.to_string(),
                    w.iterations.to_string(),
                    w.busy_iterations.to_string(),
                    w.busy_cycles.to_string(),
                    w.rx_packets.to_string(),
                    w.tx_packets.to_string(),
                    w.tx_dropped.to_string(),
                ]
            })
            .collect();
        out.table(
            &[
                "LCORE",
                "ITERATIONS",
                "BUSY_ITER",
                "BUSY_CYCLES",
                "RX_PKTS",
                "TX_PKTS",
                "TX_DROP",
            ],
            rows,
        );
        if let Some(f) = s.flows {
            println!();
            println!(
                "flows {}/{} (inserted {}, removed {}, aged {}, full {})",
                f.entries, f.capacity, f.inserted, f.removed, f.aged, f.full
            );
        }
        return Ok(());
    }
    if !(interval > 0.0 && interval.is_finite()) {
        return Err(usage("--interval must be a positive number of seconds"));
    }
    let tty = std::io::stdout().is_terminal() && !out.json;
    let mut prev: Option<pb::Stats> = None;
    let mut n = 0u64;
    loop {
        let s = c.get_stats(pb::GetStatsRequest {}).await?.into_inner();
        if let Some(p) = &prev {
            let secs = s.timestamp_ns.saturating_sub(p.timestamp_ns) as f64 / 1e9;
            let before: HashMap<u32, &pb::PortStats> =
                p.ports.iter().map(|x| (x.port, x)).collect();
            let wbefore: HashMap<u32, &pb::WorkerStats> =
                p.workers.iter().map(|x| (x.lcore, x)).collect();
            #[derive(Serialize)]
            struct PortRate {
                port: u32,
                name: String,
                rx_pps: f64,
                tx_pps: f64,
                rx_bps: f64,
                tx_bps: f64,
                rx_missed_pps: f64,
                tx_dropped_pps: f64,
                rx_packets: u64,
                tx_packets: u64,
            }
            #[derive(Serialize)]
            struct WorkerRate {
                lcore: u32,
                busy_percent: f64,
                rx_pps: f64,
                tx_pps: f64,
                cycles_per_packet: f64,
            }
            let ports: Vec<PortRate> = s
                .ports
                .iter()
                .map(|x| {
                    let b = before.get(&x.port).copied().cloned().unwrap_or_default();
                    PortRate {
                        port: x.port,
                        name: x.name.clone(),
                        rx_pps: rate(x.rx_packets, b.rx_packets, secs),
                        tx_pps: rate(x.tx_packets, b.tx_packets, secs),
                        rx_bps: 8.0 * rate(x.rx_bytes, b.rx_bytes, secs),
                        tx_bps: 8.0 * rate(x.tx_bytes, b.tx_bytes, secs),
                        rx_missed_pps: rate(x.rx_missed, b.rx_missed, secs),
                        tx_dropped_pps: rate(x.tx_dropped, b.tx_dropped, secs),
                        rx_packets: x.rx_packets,
                        tx_packets: x.tx_packets,
                    }
                })
                .collect();
            let workers: Vec<WorkerRate> = s
                .workers
                .iter()
                .map(|w| {
                    let b = wbefore.get(&w.lcore).copied().cloned().unwrap_or_default();
                    let it = w.iterations.saturating_sub(b.iterations);
                    let busy = w.busy_iterations.saturating_sub(b.busy_iterations);
                    let pk = w.rx_packets.saturating_sub(b.rx_packets);
                    let cy = w.busy_cycles.saturating_sub(b.busy_cycles);
                    WorkerRate {
                        lcore: w.lcore,
                        busy_percent: if it == 0 {
                            0.0
                        } else {
                            100.0 * busy as f64 / it as f64
                        },
                        rx_pps: rate(w.rx_packets, b.rx_packets, secs),
                        tx_pps: rate(w.tx_packets, b.tx_packets, secs),
                        cycles_per_packet: if pk == 0 { 0.0 } else { cy as f64 / pk as f64 },
                    }
                })
                .collect();
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({ "interval_secs": secs, "ports": ports, "workers": workers })
                );
            } else {
                if tty {
                    print!("\x1b[2J\x1b[H");
                }
                println!("interval {secs:.2}s");
                let rows = ports
                    .iter()
                    .map(|p| {
                        vec![
                            p.port.to_string(),
                            p.name.clone(),
                            human(p.rx_pps),
                            human(p.tx_pps),
                            human(p.rx_bps),
                            human(p.tx_bps),
                            human(p.rx_missed_pps),
                            human(p.tx_dropped_pps),
                            p.rx_packets.to_string(),
                            p.tx_packets.to_string(),
                        ]
                    })
                    .collect();
                out.table(
                    &[
                        "PORT", "NAME", "RX_PPS", "TX_PPS", "RX_BPS", "TX_BPS", "MISSED/S",
                        "TXDROP/S", "RX_TOTAL", "TX_TOTAL",
                    ],
                    rows,
                );
                println!();
                let rows = workers
                    .iter()
                    .map(|w| {
                        vec![
                            w.lcore.to_string(),
                            format!("{:.1}", w.busy_percent),
                            human(w.rx_pps),
                            human(w.tx_pps),
                            format!("{:.0}", w.cycles_per_packet),
                        ]
                    })
                    .collect();
                out.table(&["LCORE", "BUSY%", "RX_PPS", "TX_PPS", "CYCLES/PKT"], rows);
            }
            let _ = std::io::stdout().flush();
            n += 1;
            if count > 0 && n >= count {
                return Ok(());
            }
        }
        prev = Some(s);
        tokio::time::sleep(Duration::from_secs_f64(interval)).await;
    }
}
