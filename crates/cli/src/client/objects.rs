//! inspect, events, network and volume verbs, version, info.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::Value;
use strato_client::types::*;
use strato_client::{Client, CLIENT_API_VERSION};

use super::format::{self, Table};
use super::opts;
use super::template::Template;
use super::{each, now, report};

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Format the output with a template ({{.Server.Version}}, {{json .}}…).
    #[arg(short = 'f', long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output with a template ({{.State.Status}}, {{json .Config}}…).
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Only objects of this type: container, image, network or volume.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Display total file sizes (containers).
    #[arg(short = 's', long)]
    size: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

/// `container inspect` / `image inspect`: inspect with the type fixed.
#[derive(Debug, Args)]
pub struct TypedInspectArgs {
    /// Format the output with a template.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes (containers).
    #[arg(short = 's', long)]
    size: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

impl TypedInspectArgs {
    pub fn with_type(self, kind: &str) -> InspectArgs {
        InspectArgs {
            format: self.format,
            kind: Some(kind.to_string()),
            size: self.size,
            names: self.names,
        }
    }
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events created since this time (timestamp, RFC 3339 or duration like 10m).
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this time.
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided (type=container, event=start…).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format each event with a template ({{json .}}).
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkVerb {
    /// List networks.
    #[command(visible_alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        #[arg(long)]
        no_trunc: bool,
    },
    /// Create a network.
    Create {
        /// Driver to manage the network.
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format.
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway of the subnet.
        #[arg(long)]
        gateway: Option<String>,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        /// Set metadata on the network.
        #[arg(short = 'l', long = "label")]
        label: Vec<String>,
        /// Driver options (key=value).
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        name: String,
    },
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Display detailed information on one or more networks.
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeVerb {
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
    },
    /// Create a volume.
    Create {
        /// Volume driver name.
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for the volume.
        #[arg(short = 'l', long = "label")]
        label: Vec<String>,
        /// Driver options (key=value).
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Name of the volume (random when absent).
        name: Option<String>,
    },
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Display detailed information on one or more volumes.
    Inspect {
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
}

/// Prints values as `docker inspect` does: a JSON array indented with 4
/// spaces, or one template rendering per value.
fn print_values(values: &[Value], format: Option<&str>) -> Result<()> {
    match format {
        Some(f) => {
            let t = Template::parse(f)?;
            for v in values {
                println!("{}", t.render(v)?);
            }
        }
        None => println!("{}", format::pretty_json(&Value::Array(values.to_vec()))),
    }
    Ok(())
}

async fn inspect_one(c: &Client, kind: Option<&str>, name: &str, size: bool) -> Result<Value> {
    let enc = strato_client::query::encode;
    let image_path: String = name.split('/').map(enc).collect::<Vec<_>>().join("/");
    let kinds: &[(&str, String)] = &[
        (
            "container",
            format!(
                "/containers/{}/json{}",
                enc(name),
                if size { "?size=1" } else { "" }
            ),
        ),
        ("image", format!("/images/{image_path}/json")),
        ("network", format!("/networks/{}", enc(name))),
        ("volume", format!("/volumes/{}", enc(name))),
    ];
    if let Some(k) = kind {
        let Some((_, path)) = kinds.iter().find(|(n, _)| *n == k) else {
            bail!("invalid --type {k:?}: use container, image, network or volume");
        };
        return Ok(c.get_json(path).await?);
    }
    for (_, path) in kinds {
        match c.get_json::<Value>(path).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("no such object: {name}")
}

pub async fn inspect(c: &Client, a: InspectArgs) -> Result<i32> {
    let mut values = Vec::new();
    let mut code = 0;
    for n in &a.names {
        match inspect_one(c, a.kind.as_deref(), n, a.size).await {
            Ok(v) => values.push(v),
            Err(e) => {
                report(&e);
                code = 1;
            }
        }
    }
    if !values.is_empty() || a.format.is_none() {
        print_values(&values, a.format.as_deref())?;
    }
    Ok(code)
}

/// One event line as docker prints it:
/// `2024-01-01T00:00:00.000000000Z container start <id> (image=busybox, name=web)`.
pub fn event_line(e: &EventMessage) -> String {
    let secs = e.time_nano.div_euclid(1_000_000_000);
    let nanos = e.time_nano.rem_euclid(1_000_000_000) as u32;
    let when = if e.time_nano != 0 {
        strato_image::time::format(secs, nanos)
    } else {
        strato_image::time::format(e.time, 0)
    };
    let attrs: Vec<String> = e
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut s = format!("{when} {} {} {}", e.kind, e.action, e.actor.id);
    if !attrs.is_empty() {
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

pub async fn events(c: &Client, a: EventsArgs) -> Result<i32> {
    let n = now();
    let o = EventsOptions {
        since: a
            .since
            .as_deref()
            .map(|s| opts::parse_time(s, n))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| opts::parse_time(s, n))
            .transpose()?,
        filters: opts::parse_filters(&a.filter)?,
    };
    let tpl = a.format.as_deref().map(Template::parse).transpose()?;
    let mut s = c.events(&o).await?;
    while let Some(e) = s.next().await {
        let e = e?;
        let line = match &tpl {
            Some(t) => t.render(&serde_json::to_value(&e)?)?,
            None => event_line(&e),
        };
        println!("{line}");
    }
    Ok(0)
}

pub async fn network(c: &Client, v: NetworkVerb) -> Result<i32> {
    match v {
        NetworkVerb::Ls {
            quiet,
            filter,
            no_trunc,
        } => {
            let mut list = c.network_list(&opts::parse_filters(&filter)?).await?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let id = |s: &str| {
                if no_trunc {
                    s.to_string()
                } else {
                    format::short_id(s)
                }
            };
            if quiet {
                list.iter().for_each(|n| println!("{}", id(&n.id)));
                return Ok(0);
            }
            let mut t = Table::new(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
            for n in &list {
                t.row(vec![
                    id(&n.id),
                    n.name.clone(),
                    n.driver.clone(),
                    n.scope.clone(),
                ]);
            }
            print!("{}", t.render());
            Ok(0)
        }
        NetworkVerb::Create {
            driver,
            subnet,
            gateway,
            internal,
            label,
            opt,
            name,
        } => {
            if gateway.is_some() && subnet.is_none() {
                bail!("--gateway needs --subnet: give the subnet the gateway belongs to");
            }
            let ipam = subnet.map(|s| Ipam {
                driver: "default".into(),
                options: None,
                config: vec![IpamPool {
                    subnet: s,
                    gateway: gateway.unwrap_or_default(),
                    ..Default::default()
                }],
            });
            let r = c
                .network_create(&NetworkCreateRequest {
                    name,
                    driver,
                    internal,
                    ipam,
                    labels: (!label.is_empty())
                        .then(|| opts::parse_labels(&label))
                        .transpose()?,
                    options: (!opt.is_empty())
                        .then(|| opts::parse_labels(&opt))
                        .transpose()?,
                    ..Default::default()
                })
                .await?;
            if !r.warning.is_empty() {
                eprintln!("WARNING: {}", r.warning);
            }
            println!("{}", r.id);
            Ok(0)
        }
        NetworkVerb::Rm { networks } => {
            each(
                &networks,
                |n| async move { Ok(c.network_remove(&n).await?) },
            )
            .await
        }
        NetworkVerb::Inspect { format, networks } => {
            inspect(
                c,
                InspectArgs {
                    format,
                    kind: Some("network".into()),
                    size: false,
                    names: networks,
                },
            )
            .await
        }
    }
}

pub async fn volume(c: &Client, v: VolumeVerb) -> Result<i32> {
    match v {
        VolumeVerb::Ls { quiet, filter } => {
            let r = c.volume_list(&opts::parse_filters(&filter)?).await?;
            for w in &r.warnings {
                eprintln!("WARNING: {w}");
            }
            let mut vols = r.volumes;
            vols.sort_by(|a, b| a.name.cmp(&b.name));
            if quiet {
                vols.iter().for_each(|v| println!("{}", v.name));
                return Ok(0);
            }
            let mut t = Table::new(&["DRIVER", "VOLUME NAME"]);
            for v in &vols {
                t.row(vec![v.driver.clone(), v.name.clone()]);
            }
            print!("{}", t.render());
            Ok(0)
        }
        VolumeVerb::Create {
            driver,
            label,
            opt,
            name,
        } => {
            let v = c
                .volume_create(&VolumeCreateRequest {
                    name: name.unwrap_or_default(),
                    driver,
                    driver_opts: (!opt.is_empty())
                        .then(|| opts::parse_labels(&opt))
                        .transpose()?,
                    labels: (!label.is_empty())
                        .then(|| opts::parse_labels(&label))
                        .transpose()?,
                })
                .await?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeVerb::Rm { force, volumes } => {
            each(&volumes, |n| async move {
                Ok(c.volume_remove(&n, force).await?)
            })
            .await
        }
        VolumeVerb::Inspect { format, volumes } => {
            inspect(
                c,
                InspectArgs {
                    format,
                    kind: Some("volume".into()),
                    size: false,
                    names: volumes,
                },
            )
            .await
        }
    }
}

fn client_version() -> Value {
    serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": CLIENT_API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
    })
}

pub async fn version(c: &Client, a: FormatArgs) -> Result<i32> {
    let server = c.version().await;
    if let Some(f) = &a.format {
        let v = serde_json::json!({
            "Client": client_version(),
            "Server": server.as_ref().ok().map(serde_json::to_value).transpose()?,
        });
        println!("{}", Template::parse(f)?.render(&v)?);
        return Ok(if server.is_ok() { 0 } else { 1 });
    }
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       {CLIENT_API_VERSION}");
    println!(
        " OS/Arch:           {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let s = server?;
    println!();
    println!("Server:");
    println!(" Engine:");
    println!("  Version:          {}", s.version);
    println!(
        "  API version:      {} (minimum version {})",
        s.api_version, s.min_api_version
    );
    if !s.git_commit.is_empty() {
        println!("  Git commit:       {}", s.git_commit);
    }
    if !s.build_time.is_empty() {
        println!("  Built:            {}", s.build_time);
    }
    println!("  OS/Arch:          {}/{}", s.os, s.arch);
    println!("  Kernel version:   {}", s.kernel_version);
    println!("  Experimental:     {}", s.experimental);
    for comp in s.components.iter().filter(|c| c.name != "Engine") {
        println!(" {}:", comp.name);
        println!("  Version:          {}", comp.version);
    }
    Ok(0)
}

pub async fn info(c: &Client, a: FormatArgs) -> Result<i32> {
    let i: Value = c.get_json("/info").await?;
    if let Some(f) = &a.format {
        println!("{}", Template::parse(f)?.render(&i)?);
        return Ok(0);
    }
    let i: SystemInfo = serde_json::from_value(i)?;
    println!("Server:");
    println!(" Containers: {}", i.containers);
    println!("  Running: {}", i.containers_running);
    println!("  Paused: {}", i.containers_paused);
    println!("  Stopped: {}", i.containers_stopped);
    println!(" Images: {}", i.images);
    println!(" Server Version: {}", i.server_version);
    println!(" Storage Driver: {}", i.driver);
    for [k, v] in &i.driver_status {
        println!("  {k}: {v}");
    }
    println!(" Logging Driver: {}", i.logging_driver);
    println!(" Cgroup Driver: {}", i.cgroup_driver);
    println!(" Cgroup Version: {}", i.cgroup_version);
    println!(" Plugins:");
    println!("  Volume: {}", i.plugins.volume.join(" "));
    println!("  Network: {}", i.plugins.network.join(" "));
    println!("  Log: {}", i.plugins.log.join(" "));
    let runtimes: Vec<&str> = i.runtimes.keys().map(String::as_str).collect();
    println!(" Runtimes: {}", runtimes.join(" "));
    println!(" Default Runtime: {}", i.default_runtime);
    if !i.security_options.is_empty() {
        println!(" Security Options:");
        for o in &i.security_options {
            println!(
                "  {}",
                o.split(',').next().unwrap_or(o).trim_start_matches("name=")
            );
        }
    }
    println!(" Kernel Version: {}", i.kernel_version);
    println!(" Operating System: {}", i.operating_system);
    println!(" OSType: {}", i.os_type);
    println!(" Architecture: {}", i.architecture);
    println!(" CPUs: {}", i.ncpu);
    println!(
        " Total Memory: {}",
        format::binary_size(i.mem_total.max(0) as u64)
    );
    println!(" Name: {}", i.name);
    println!(" ID: {}", i.id);
    println!(" Docker Root Dir: {}", i.docker_root_dir);
    println!(" Debug Mode: {}", i.debug);
    println!(" Live Restore Enabled: {}", i.live_restore_enabled);
    for w in i.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_like_docker() {
        let mut e = EventMessage {
            kind: "container".into(),
            action: "start".into(),
            time: 1_700_000_000,
            time_nano: 1_700_000_000_123_456_789,
            ..Default::default()
        };
        e.actor.id = "abc".into();
        e.actor.attributes.insert("name".into(), "web".into());
        e.actor.attributes.insert("image".into(), "busybox".into());
        assert_eq!(
            event_line(&e),
            "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=web)"
        );
    }
}
