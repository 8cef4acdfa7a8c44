//! The image configuration of `docker commit` and `docker import`: a
//! container's configuration as an image's `config` object, and the
//! Dockerfile instructions of `--change` applied to it. No I/O.

use serde_json::{json, Map, Value};
use strato_api::types as api;

/// The instructions `--change` accepts (dockerd's list).
const ALLOWED: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The image `config` object for a container configuration (the keys an
/// image carries; empty ones left out).
pub fn image_config(c: &api::ContainerConfig) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        let empty = match &v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            m.insert(k.to_string(), v);
        }
    };
    put("User", json!(c.user));
    put("ExposedPorts", json!(c.exposed_ports));
    put("Env", json!(c.env));
    put("Entrypoint", json!(c.entrypoint));
    put("Cmd", json!(c.cmd));
    put("Volumes", json!(c.volumes));
    put("WorkingDir", json!(c.working_dir));
    put("Labels", json!(c.labels));
    put("StopSignal", json!(c.stop_signal));
    put("OnBuild", json!(c.on_build));
    put("Shell", json!(c.shell));
    if let Some(h) = &c.healthcheck {
        put("Healthcheck", json!(h));
    }
    Value::Object(m)
}

/// `base` with the fields `over` sets (the body of `POST /commit`).
pub fn overlay(
    mut base: api::ContainerConfig,
    over: &api::ContainerConfig,
) -> api::ContainerConfig {
    if over.cmd.as_ref().is_some_and(|v| !v.is_empty()) {
        base.cmd = over.cmd.clone();
    }
    if over.entrypoint.is_some() {
        base.entrypoint = over.entrypoint.clone();
    }
    if let Some(env) = &over.env {
        let mut all = base.env.take().unwrap_or_default();
        for e in env {
            let key = e.split('=').next().unwrap_or("");
            all.retain(|x| x.split('=').next() != Some(key));
            all.push(e.clone());
        }
        base.env = Some(all);
    }
    for (to, from) in [
        (&mut base.user, &over.user),
        (&mut base.working_dir, &over.working_dir),
    ] {
        if !from.is_empty() {
            *to = from.clone();
        }
    }
    if let Some(l) = &over.labels {
        base.labels
            .get_or_insert_with(Default::default)
            .extend(l.clone());
    }
    if let Some(p) = &over.exposed_ports {
        base.exposed_ports
            .get_or_insert_with(Default::default)
            .extend(p.clone());
    }
    if let Some(v) = &over.volumes {
        base.volumes
            .get_or_insert_with(Default::default)
            .extend(v.clone());
    }
    if over.healthcheck.is_some() {
        base.healthcheck = over.healthcheck.clone();
    }
    if over.stop_signal.is_some() {
        base.stop_signal = over.stop_signal.clone();
    }
    base
}

/// Applies `changes` (one Dockerfile instruction each) to an image
/// `config` object, as `docker commit/import --change` do.
pub fn apply_changes(cfg: &mut Value, changes: &[String]) -> Result<(), String> {
    if !cfg.is_object() {
        *cfg = json!({});
    }
    for line in changes {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instr, rest) = line
            .split_once(char::is_whitespace)
            .map(|(i, r)| (i, r.trim()))
            .unwrap_or((line, ""));
        let instr = instr.to_ascii_uppercase();
        if !ALLOWED.contains(&instr.as_str()) {
            return Err(format!(
                "{instr} is not a valid change command: use one of {}",
                ALLOWED.join(", ")
            ));
        }
        let m = cfg.as_object_mut().expect("an object");
        match instr.as_str() {
            "CMD" => {
                m.insert("Cmd".into(), json!(command(rest)?));
            }
            "ENTRYPOINT" => {
                m.insert("Entrypoint".into(), json!(command(rest)?));
            }
            "ENV" => {
                let pairs = key_values(rest, true)?;
                let env = m.entry("Env").or_insert_with(|| json!([]));
                let list = env.as_array_mut().ok_or("Env is not a list")?;
                for (k, v) in pairs {
                    list.retain(|e| e.as_str().and_then(|e| e.split('=').next()) != Some(&k));
                    list.push(json!(format!("{k}={v}")));
                }
            }
            "LABEL" => {
                let pairs = key_values(rest, false)?;
                let labels = m.entry("Labels").or_insert_with(|| json!({}));
                let o = labels.as_object_mut().ok_or("Labels is not a map")?;
                for (k, v) in pairs {
                    o.insert(k, json!(v));
                }
            }
            "EXPOSE" => {
                let ports = m.entry("ExposedPorts").or_insert_with(|| json!({}));
                let o = ports.as_object_mut().ok_or("ExposedPorts is not a map")?;
                for p in rest.split_whitespace() {
                    o.insert(exposed_port(p)?, json!({}));
                }
            }
            "VOLUME" => {
                let list = if rest.starts_with('[') {
                    json_list(rest)?
                } else {
                    rest.split_whitespace().map(String::from).collect()
                };
                let vols = m.entry("Volumes").or_insert_with(|| json!({}));
                let o = vols.as_object_mut().ok_or("Volumes is not a map")?;
                for v in list {
                    o.insert(v, json!({}));
                }
            }
            "USER" => {
                m.insert("User".into(), json!(one_arg(&instr, rest)?));
            }
            "STOPSIGNAL" => {
                m.insert("StopSignal".into(), json!(one_arg(&instr, rest)?));
            }
            "WORKDIR" => {
                let dir = one_arg(&instr, rest)?;
                let dir = if dir.starts_with('/') {
                    dir
                } else {
                    let base = m.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                    format!("{}/{dir}", base.trim_end_matches('/'))
                };
                m.insert("WorkingDir".into(), json!(dir));
            }
            "ONBUILD" => {
                let list = m.entry("OnBuild").or_insert_with(|| json!([]));
                list.as_array_mut()
                    .ok_or("OnBuild is not a list")?
                    .push(json!(rest));
            }
            "HEALTHCHECK" => {
                m.insert("Healthcheck".into(), healthcheck(rest)?);
            }
            _ => unreachable!("checked against ALLOWED"),
        }
    }
    Ok(())
}

fn one_arg(instr: &str, rest: &str) -> Result<String, String> {
    if rest.is_empty() {
        return Err(format!("{instr} requires exactly one argument"));
    }
    Ok(rest.to_string())
}

/// Exec form (a JSON list of strings) or shell form (`/bin/sh -c REST`).
fn command(rest: &str) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        if let Ok(v) = json_list(rest) {
            return Ok(v);
        }
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

fn json_list(s: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(s).map_err(|_| format!("invalid JSON list {s:?}: write [\"a\", \"b\"]"))
}

/// `80`, `80/udp` → `80/tcp`, `80/udp`.
pub(crate) fn exposed_port(p: &str) -> Result<String, String> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let ok_port = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    let ports_ok = match port.split_once('-') {
        Some((a, b)) => ok_port(a) && ok_port(b),
        None => ok_port(port),
    };
    if !ports_ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid port {p:?} in EXPOSE: give port[/tcp|udp|sctp] with a port from 1 to 65535"
        ));
    }
    Ok(format!("{port}/{proto}"))
}

/// `k=v k2="v 2"` (or, when `legacy` and the first word has no `=`,
/// `k the rest`), with Dockerfile quoting (double and single quotes,
/// backslash escapes).
fn key_values(rest: &str, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest)?;
    if words.is_empty() {
        return Err(format!("missing key=value in {rest:?}"));
    }
    if legacy && !words[0].contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("ENV {rest:?} needs a value: write ENV key=value"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("invalid {w:?}: write key=value")),
        })
        .collect()
}

/// Splits on unquoted whitespace, removing quotes and escapes.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {s:?}"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `HEALTHCHECK [--interval=D --timeout=D --start-period=D --retries=N] CMD …`
/// or `HEALTHCHECK NONE`, as the image config's `Healthcheck` (durations in
/// nanoseconds).
pub fn healthcheck(rest: &str) -> Result<Value, String> {
    if rest.eq_ignore_ascii_case("NONE") {
        return Ok(json!({ "Test": ["NONE"] }));
    }
    let mut h = Map::new();
    let mut rest = rest.trim_start();
    while let Some(opt) = rest.strip_prefix("--") {
        let (word, after) = opt.split_once(char::is_whitespace).unwrap_or((opt, ""));
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("invalid HEALTHCHECK option --{word}: write --name=value"))?;
        let key = match k {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            other => return Err(format!("unknown HEALTHCHECK option --{other}")),
        };
        let n = if key == "Retries" {
            v.parse::<i64>()
                .map_err(|_| format!("invalid --retries={v}: give a number"))?
        } else {
            duration_ns(v)?
        };
        h.insert(key.into(), json!(n));
        rest = after.trim_start();
    }
    let (instr, cmd) = rest
        .split_once(char::is_whitespace)
        .map(|(i, c)| (i, c.trim()))
        .unwrap_or((rest, ""));
    if !instr.eq_ignore_ascii_case("CMD") || cmd.is_empty() {
        return Err(format!(
            "invalid HEALTHCHECK {rest:?}: write HEALTHCHECK [OPTIONS] CMD command, or NONE"
        ));
    }
    let test = match command(cmd)? {
        v if cmd.starts_with('[') => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v);
            t
        }
        _ => vec!["CMD-SHELL".to_string(), cmd.to_string()],
    };
    h.insert("Test".into(), json!(test));
    Ok(Value::Object(h))
}

/// Go's duration syntax (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn duration_ns(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}: write it like 30s, 1m30s or 500ms");
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(start: Value, changes: &[&str]) -> Value {
        let mut v = start;
        let c: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut v, &c).unwrap();
        v
    }

    #[test]
    fn dockerfile_changes_apply_like_dockerd() {
        let v = changed(
            json!({"Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv"}),
            &[
                r#"CMD ["bash"]"#,
                "ENTRYPOINT echo hi",
                "ENV A=2 B=\"two words\"",
                "env C the rest",
                "EXPOSE 8000 53/udp",
                "LABEL a=b 'c d'=e",
                "USER foobar",
                "WORKDIR app",
                "VOLUME /data /logs",
                "STOPSIGNAL SIGINT",
            ],
        );
        assert_eq!(v["Cmd"], json!(["bash"]));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            v["Env"],
            json!(["PATH=/bin", "A=2", "B=two words", "C=the rest"])
        );
        assert_eq!(v["ExposedPorts"], json!({"8000/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(v["User"], "foobar");
        assert_eq!(v["WorkingDir"], "/srv/app");
        assert_eq!(v["Volumes"], json!({"/data": {}, "/logs": {}}));
        assert_eq!(v["StopSignal"], "SIGINT");
    }

    #[test]
    fn bad_changes_name_the_problem() {
        for (bad, why) in [
            ("RUN echo", "not a valid change command"),
            ("EXPOSE 0", "invalid port"),
            ("EXPOSE 80/xyz", "invalid port"),
            ("LABEL novalue", "key=value"),
            ("ENV 'open", "unterminated quote"),
            ("USER", "exactly one argument"),
            ("HEALTHCHECK --interval=5x CMD true", "invalid duration"),
        ] {
            let mut v = json!({});
            let e = apply_changes(&mut v, &[bad.to_string()]).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn healthchecks_and_durations() {
        assert_eq!(
            healthcheck("--interval=1s --retries=3 CMD curl -f http://x/").unwrap(),
            json!({"Interval": 1_000_000_000i64, "Retries": 3, "Test": ["CMD-SHELL", "curl -f http://x/"]})
        );
        assert_eq!(
            healthcheck(r#"CMD ["true"]"#).unwrap(),
            json!({"Test": ["CMD", "true"]})
        );
        assert_eq!(healthcheck("none").unwrap(), json!({"Test": ["NONE"]}));
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("").is_err());
    }

    #[test]
    fn a_container_config_becomes_an_image_config() {
        let base = api::ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["A=1".into()]),
            working_dir: "/w".into(),
            ..Default::default()
        };
        let over = api::ContainerConfig {
            env: Some(vec!["A=2".into(), "B=1".into()]),
            user: "u".into(),
            ..Default::default()
        };
        let v = image_config(&overlay(base, &over));
        assert_eq!(
            v,
            json!({"Cmd": ["sh"], "Env": ["A=2", "B=1"], "WorkingDir": "/w", "User": "u"})
        );
    }
}
