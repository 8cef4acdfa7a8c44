//! Local volumes: `DATA_ROOT/volumes/<name>/_data` with the volume's
//! metadata beside it in `volume.json` (labels, options, creation time,
//! whether it is anonymous).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is kept about a volume besides its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for `-v /path` or an image VOLUME, without a name.
    #[serde(default)]
    pub anonymous: bool,
}

/// The volume directory.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn new(dir: PathBuf) -> Volumes {
        Volumes { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Creates the volume if missing; returns its metadata.
    pub fn ensure(&self, name: &str, meta: VolumeMeta) -> io::Result<VolumeMeta> {
        if !crate::ids::valid_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid volume name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+"),
            ));
        }
        if let Some(m) = self.get(name) {
            return Ok(m);
        }
        fs::create_dir_all(self.data(name))?;
        let tmp = self.dir.join(name).join(".volume.json.tmp");
        fs::write(&tmp, serde_json::to_vec(&meta).map_err(io::Error::other)?)?;
        fs::rename(&tmp, self.dir.join(name).join("volume.json"))?;
        Ok(meta)
    }

    /// A volume's metadata, if it exists.
    pub fn get(&self, name: &str) -> Option<VolumeMeta> {
        if !crate::ids::valid_name(name) || !self.data(name).is_dir() {
            return None;
        }
        let meta = fs::read(self.dir.join(name).join("volume.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Some(meta.unwrap_or_default())
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<(String, VolumeMeta)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, VolumeMeta)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                self.get(&name).map(|m| (name, m))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Deletes a volume and its data.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        if self.get(name).is_none() {
            return Err(io::Error::new(io::ErrorKind::NotFound, name.to_string()));
        }
        fs::remove_dir_all(self.dir.join(name))
    }

    /// Bytes used by a volume's data (not following symlinks).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::new(d.path().join("volumes"));
        let mut meta = VolumeMeta {
            created_at: "2024-01-01T00:00:00Z".into(),
            ..Default::default()
        };
        meta.labels.insert("a".into(), "b".into());
        v.ensure("data", meta.clone()).unwrap();
        // Existing: kept as it was.
        assert_eq!(v.ensure("data", VolumeMeta::default()).unwrap(), meta);
        fs::write(v.data("data").join("f"), b"12345").unwrap();
        assert_eq!(v.size("data"), 5);
        assert_eq!(v.list().len(), 1);
        assert!(v.ensure("../x", VolumeMeta::default()).is_err());
        assert!(v.get("..").is_none());
        v.remove("data").unwrap();
        assert!(v.list().is_empty());
        assert!(v.remove("data").is_err());
    }
}
