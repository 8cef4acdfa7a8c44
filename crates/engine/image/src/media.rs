//! Media types and layer compression.

use std::io::{BufRead, BufReader, Read};

use crate::error::{Error, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer (gzip).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign layer (never stored in archives).
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// What a manifest-ish media type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A single-platform manifest (OCI or Docker schema2).
    Manifest,
    /// A multi-platform index (OCI index or Docker manifest list).
    Index,
    /// An image config.
    Config,
    /// A filesystem layer.
    Layer,
    /// Something else (attestations, artifacts, signatures…).
    Other,
}

/// Classifies a media type.
pub fn kind(media_type: &str) -> Kind {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        OCI_CONFIG | DOCKER_CONFIG => Kind::Config,
        m if m.starts_with("application/vnd.oci.image.layer.")
            || m.starts_with("application/vnd.docker.image.rootfs.") =>
        {
            Kind::Layer
        }
        _ => Kind::Other,
    }
}

/// How a layer blob is compressed, detected from its first bytes (media
/// types lie often enough that Docker does the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a blob.
    pub fn detect(head: &[u8]) -> Result<Compression> {
        Ok(match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [b'B', b'Z', b'h', ..] => return Err(Error::UnsupportedCompression("bzip2")),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => {
                return Err(Error::UnsupportedCompression("xz"))
            }
            _ => Compression::None,
        })
    }

    /// The OCI layer media type for this compression.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for; returns the
/// decompressed stream and what was detected.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<(Box<dyn Read + 'a>, Compression)> {
    let mut buf = BufReader::with_capacity(64 * 1024, reader);
    let head = buf.fill_buf().map_err(Error::Archive)?;
    let c = Compression::detect(head)?;
    let r: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buf).map_err(Error::Archive)?)
        }
    };
    Ok((r, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_compression_by_magic() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8, 0]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            Compression::detect(b"etc/\0\0\0").unwrap(),
            Compression::None
        );
        assert_eq!(Compression::detect(b"").unwrap(), Compression::None);
        assert!(matches!(
            Compression::detect(b"BZh91AY"),
            Err(Error::UnsupportedCompression("bzip2"))
        ));
        assert!(Compression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]).is_err());
    }

    #[test]
    fn decompresses_gzip_and_zstd() {
        let data = b"some layer bytes".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        for (blob, want) in [
            (gz, Compression::Gzip),
            (zs, Compression::Zstd),
            (data.clone(), Compression::None),
        ] {
            let (mut r, c) = decompress(&blob[..]).unwrap();
            assert_eq!(c, want);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn classifies_media_types() {
        assert_eq!(kind(OCI_MANIFEST), Kind::Manifest);
        assert_eq!(kind(DOCKER_MANIFEST), Kind::Manifest);
        assert_eq!(kind(OCI_INDEX), Kind::Index);
        assert_eq!(kind(DOCKER_MANIFEST_LIST), Kind::Index);
        assert_eq!(kind(DOCKER_CONFIG), Kind::Config);
        assert_eq!(kind(OCI_LAYER_ZSTD), Kind::Layer);
        assert_eq!(kind(DOCKER_LAYER_GZIP), Kind::Layer);
        assert_eq!(kind("application/vnd.in-toto+json"), Kind::Other);
    }
}
