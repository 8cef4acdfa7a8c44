//! The distribution-spec error codes and the error JSON
//! (`{"errors":[{"code","message","detail"}]}`).

use hyper::StatusCode;

/// The error codes of distribution-spec v1.1 (plus `SIZE_INVALID` and
/// `TOOMANYREQUESTS`, which the spec also lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
}

impl Code {
    /// The code as it appears in the error JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The status the spec pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answered to a client: a spec code, a message saying what was wrong
/// with which input, and the status (the code's own unless overridden).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct RegistryError {
    pub code: Code,
    pub message: String,
    pub status: StatusCode,
    pub detail: Option<serde_json::Value>,
}

impl RegistryError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            message: message.into(),
            status: code.status(),
            detail: None,
        }
    }

    /// The same error with another HTTP status (416 for out-of-order chunks,
    /// 413 for oversize bodies, 500 for storage failures).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// A storage failure: the client sees 500 and what failed, not the host's paths.
    pub fn internal(what: &str, e: &std::io::Error) -> Self {
        tracing::error!(error = %e, "{what}");
        RegistryError::new(Code::Unsupported, format!("{what}: {}", e.kind()))
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The error JSON body.
    pub fn body(&self) -> String {
        let mut e = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(d) = &self.detail {
            e["detail"] = d.clone();
        }
        serde_json::json!({ "errors": [e] }).to_string()
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Errors of starting a registry (bad configuration, unreadable files, bind).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("registry root {path}: {source}")]
    Root {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_code_message_and_detail() {
        let e = RegistryError::new(Code::DigestInvalid, "bad")
            .with_detail(serde_json::json!({"digest": "x"}));
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "DIGEST_INVALID");
        assert_eq!(v["errors"][0]["message"], "bad");
        assert_eq!(v["errors"][0]["detail"]["digest"], "x");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
