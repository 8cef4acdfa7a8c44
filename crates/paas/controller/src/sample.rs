//! The sample cartridge image `strato up` builds locally: a busybox root
//! filesystem (as scripts/mkrootfs.sh makes one) whose entry script serves,
//! with busybox `httpd` on `$PORT`, a page naming the member, plus
//! `/cgi-bin/slow?SECONDS`, a request that takes that long (to load the
//! autoscaler). The same image serves the sample's HTTP and TCP cartridges.

use std::io;
use std::path::{Path, PathBuf};

/// The image references of the samples (crates/paas/model/samples).
pub const HTTP_IMAGE: &str = "strato/sample-http:1";
pub const TCP_IMAGE: &str = "strato/sample-tcp:1";

/// The image's command.
pub const CMD: [&str; 2] = ["/bin/sh", "/strato/member.sh"];

const MEMBER_SH: &str = r#"#!/bin/sh
# strato sample cartridge: serve a page naming this member on $PORT.
PORT=${PORT:-80}
mkdir -p /www/cgi-bin
cat > /www/index.html <<EOF
<!doctype html>
<html><head><title>strato sample</title></head>
<body><h1>Hello from strato</h1>
<p>member ${MEMBER_ID:-?} of cluster ${CLUSTER_ID:-?} (application ${APPLICATION_ID:-?})</p>
</body></html>
EOF
printf '%s\n' "${MEMBER_ID:-?}" > /www/member.txt
cp /strato/slow /www/cgi-bin/slow
chmod 755 /www/cgi-bin/slow
exec httpd -f -p "$PORT" -h /www
"#;

const SLOW_CGI: &str = r#"#!/bin/sh
# /cgi-bin/slow?N: answers after N seconds (1 to 60).
n=${QUERY_STRING:-1}
case "$n" in ''|*[!0-9]*) n=1 ;; esac
[ "$n" -gt 60 ] && n=60
sleep "$n"
printf 'Content-Type: text/plain\r\n\r\n'
printf 'slept %s s\n' "$n"
cat /www/member.txt
"#;

const APPLETS: &[&str] = &[
    "sh", "ash", "httpd", "sleep", "mkdir", "cat", "cp", "chmod", "printf", "echo", "env", "ls",
    "ps", "kill", "nc", "wget", "date", "hostname", "true", "false", "test", "[", "rm", "sed",
];

/// A static busybox on this machine, if there is one.
pub fn find_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| is_static(p))
}

fn is_static(p: &Path) -> bool {
    let Ok(bytes) = std::fs::read(p) else {
        return false;
    };
    // A dynamically linked binary names its loader.
    !contains(&bytes, b"/ld-linux") && !contains(&bytes, b"/ld-musl")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The image's root filesystem as a tar (for an image import).
pub fn rootfs_tar(busybox: &Path) -> io::Result<Vec<u8>> {
    let bin = std::fs::read(busybox)
        .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", busybox.display())))?;
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, io::empty())
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, data)
    };
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "www", "strato", "root",
    ] {
        dir(&mut b, d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    file(&mut b, "bin/busybox", 0o755, &bin)?;
    for a in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox")?;
    }
    file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    file(
        &mut b,
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    )?;
    file(&mut b, "strato/member.sh", 0o755, MEMBER_SH.as_bytes())?;
    file(&mut b, "strato/slow", 0o755, SLOW_CGI.as_bytes())?;
    b.into_inner()
}

/// The image as a `docker save` archive (manifest.json, config, one
/// layer), tagged [`HTTP_IMAGE`] and [`TCP_IMAGE`], for an image load. (An
/// import cannot set the command.)
pub fn image_archive(busybox: &Path) -> io::Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let layer = rootfs_tar(busybox)?;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&layer)));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Cmd": CMD,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": "strato sample cartridge"}
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "strato up (sample cartridge)"}]
    }))
    .map_err(io::Error::other)?;
    let config_name = format!("{}.json", hex(&Sha256::digest(&config)));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [HTTP_IMAGE, TCP_IMAGE],
        "Layers": ["layer/layer.tar"]
    }]))
    .map_err(io::Error::other)?;
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", manifest.as_slice()),
        (config_name.as_str(), config.as_slice()),
        ("layer/layer.tar", layer.as_slice()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data)?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_has_busybox_its_applets_and_the_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        std::fs::write(&fake, b"\x7fELF static").unwrap();
        let tar = rootfs_tar(&fake).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        for want in [
            "bin/busybox",
            "bin/httpd",
            "bin/sh",
            "strato/member.sh",
            "strato/slow",
            "etc/passwd",
        ] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == want),
                "{want} in {names:?}"
            );
        }
        assert!(is_static(&fake));
    }
}
