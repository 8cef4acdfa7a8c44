//! Parsing and validation of manifests a client pushes: OCI image manifest and
//! index, Docker schema 2 manifest and manifest list. Only the fields the
//! registry needs are read; the bytes are stored exactly as received.

use serde_json::Value;

use crate::error::{Code, RegistryError, Result};
use crate::names::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest accepted (the spec's recommended minimum limit).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// What a manifest refers to.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub media_type: String,
    /// Blobs (config and layers) that must exist in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index / manifest list.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or the config's media type for an image manifest.
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
}

fn invalid(msg: String) -> RegistryError {
    RegistryError::new(Code::ManifestInvalid, msg)
}

/// Parses `bytes` sent with `content_type` (the header, if any).
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Parsed> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(invalid("manifest is not a JSON object".into()));
    };
    if obj.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid(
            "manifest schemaVersion must be 2 (schema 1 manifests are not accepted)".into(),
        ));
    }
    let field_type = obj.get("mediaType").and_then(Value::as_str);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/octet-stream" && *c != "application/json");
    let media_type = match (header, field_type) {
        (Some(h), Some(f)) if h != f => {
            return Err(invalid(format!(
                "Content-Type {h:?} does not match the manifest's mediaType {f:?}"
            )))
        }
        (Some(h), _) => h.to_string(),
        (None, Some(f)) => f.to_string(),
        (None, None) if obj.contains_key("manifests") => OCI_INDEX.to_string(),
        (None, None) if obj.contains_key("config") => OCI_MANIFEST.to_string(),
        (None, None) => {
            return Err(invalid(
                "manifest has no media type: send Content-Type or a mediaType field".into(),
            ))
        }
    };
    let mut p = Parsed {
        media_type: media_type.clone(),
        annotations: obj.get("annotations").cloned(),
        artifact_type: obj
            .get("artifactType")
            .and_then(Value::as_str)
            .map(String::from),
        ..Parsed::default()
    };
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = obj
                .get("config")
                .ok_or_else(|| invalid("image manifest has no config descriptor".into()))?;
            let (cd, cmt) = descriptor(config, "config")?;
            p.blobs.push(cd);
            if p.artifact_type.is_none() {
                p.artifact_type = Some(cmt);
            }
            let layers = match obj.get("layers") {
                Some(Value::Array(a)) => a.as_slice(),
                None if media_type == OCI_MANIFEST => &[],
                _ => return Err(invalid("image manifest layers must be an array".into())),
            };
            for (i, l) in layers.iter().enumerate() {
                let (d, mt) = descriptor(l, &format!("layers[{i}]"))?;
                // Foreign / non-distributable layers live elsewhere (urls).
                if !(mt.contains("foreign") || mt.contains("nondistributable")) {
                    p.blobs.push(d);
                }
            }
        }
        OCI_INDEX | DOCKER_LIST => {
            let Some(Value::Array(ms)) = obj.get("manifests") else {
                return Err(invalid("index has no manifests array".into()));
            };
            for (i, m) in ms.iter().enumerate() {
                let (d, _) = descriptor(m, &format!("manifests[{i}]"))?;
                p.children.push(d);
            }
        }
        other => {
            return Err(invalid(format!(
                "unsupported manifest media type {other:?}: this registry accepts {OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST} and {DOCKER_LIST}"
            )))
        }
    }
    if let Some(s) = obj.get("subject") {
        p.subject = Some(descriptor(s, "subject")?.0);
    }
    Ok(p)
}

/// Checks a descriptor's digest, size and media type; returns the digest and media type.
fn descriptor(v: &Value, what: &str) -> Result<(Digest, String)> {
    let mt = v
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what}: descriptor has no mediaType")))?;
    let d = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what}: descriptor has no digest")))?;
    if v.get("size").and_then(Value::as_u64).is_none() {
        return Err(invalid(format!(
            "{what}: descriptor size must be a non-negative integer"
        )));
    }
    let d = Digest::parse(d).map_err(|e| invalid(format!("{what}: {}", e.message)))?;
    Ok((d, mt.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest_lists_config_layers_and_subject() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dg('a'), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": dg('b'), "size": 3},
                {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": dg('c'), "size": 3}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": dg('d'), "size": 9}
        });
        let p = parse(None, m.to_string().as_bytes()).unwrap();
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.subject.unwrap().hex(), "d".repeat(64));
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn bad_manifests_are_refused() {
        for (ct, body) in [
            (None, "not json".to_string()),
            (None, "[]".to_string()),
            (None, r#"{"schemaVersion":1}"#.to_string()),
            (Some(OCI_MANIFEST), r#"{"schemaVersion":2,"layers":[]}"#.to_string()),
            (
                Some(OCI_INDEX),
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","manifests":[]}}"#),
            ),
            (
                Some(OCI_INDEX),
                r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#
                    .to_string(),
            ),
            (Some("text/plain"), r#"{"schemaVersion":2}"#.to_string()),
        ] {
            let e = parse(ct, body.as_bytes()).unwrap_err();
            assert_eq!(e.code, Code::ManifestInvalid, "{body}");
        }
    }

    #[test]
    fn index_lists_children() {
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_LIST,
            "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": dg('e'), "size": 5}]});
        let p = parse(Some(DOCKER_LIST), m.to_string().as_bytes()).unwrap();
        assert_eq!(p.children.len(), 1);
        assert!(p.blobs.is_empty());
    }
}
