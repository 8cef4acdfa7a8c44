//! Kinds of definitions and the model's errors.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of definitions, named as Stratos's REST resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    Cartridge,
    CartridgeGroup,
    Application,
    NetworkPartition,
    DeploymentPolicy,
    ApplicationPolicy,
    AutoscalingPolicy,
    KubernetesCluster,
}

impl Kind {
    /// Every kind, in the order definitions are best added (referenced
    /// kinds before the kinds that reference them).
    pub const ALL: [Kind; 8] = [
        Kind::KubernetesCluster,
        Kind::NetworkPartition,
        Kind::AutoscalingPolicy,
        Kind::DeploymentPolicy,
        Kind::ApplicationPolicy,
        Kind::Cartridge,
        Kind::CartridgeGroup,
        Kind::Application,
    ];

    /// The Stratos 4.1 REST resource (`/api/cartridges`, ...).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Cartridge => "cartridges",
            Kind::CartridgeGroup => "cartridgeGroups",
            Kind::Application => "applications",
            Kind::NetworkPartition => "networkPartitions",
            Kind::DeploymentPolicy => "deploymentPolicies",
            Kind::ApplicationPolicy => "applicationPolicies",
            Kind::AutoscalingPolicy => "autoscalingPolicies",
            Kind::KubernetesCluster => "kubernetesClusters",
        }
    }

    /// The kind served at a REST resource name.
    pub fn from_resource(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.resource() == name)
    }

    /// The JSON field holding a definition's id.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Cartridge => "type",
            Kind::CartridgeGroup => "name",
            Kind::Application => "applicationId",
            Kind::KubernetesCluster => "clusterId",
            _ => "id",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Cartridge => "cartridge",
            Kind::CartridgeGroup => "cartridge group",
            Kind::Application => "application",
            Kind::NetworkPartition => "network partition",
            Kind::DeploymentPolicy => "deployment policy",
            Kind::ApplicationPolicy => "application policy",
            Kind::AutoscalingPolicy => "autoscaling policy",
            Kind::KubernetesCluster => "kubernetes cluster",
        })
    }
}

/// Why a definition or a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The definition is malformed or inconsistent; `path` is the JSON path
    /// of the fault inside it (empty for the whole document).
    #[error("{kind} {}: {}{message}", show_id(id), show_path(path))]
    Invalid {
        kind: Kind,
        id: String,
        path: String,
        message: String,
    },
    /// An add of a definition whose id is taken.
    #[error("{kind} {id:?} already exists; remove it first or send it as an update")]
    Exists { kind: Kind, id: String },
    /// An update, remove, deploy or undeploy of something that is not there.
    #[error("{kind} {id:?} does not exist")]
    NotFound { kind: Kind, id: String },
    /// A removal of a definition something else still uses.
    #[error("cannot remove {kind} {id:?}: {user_kind} {user_id:?} uses it at {path}; change or remove that first")]
    InUse {
        kind: Kind,
        id: String,
        user_kind: Kind,
        user_id: String,
        path: String,
    },
    /// A change to an application while it is deployed.
    #[error("application {id:?} is deployed; undeploy it first")]
    Deployed { id: String },
}

impl ModelError {
    /// The JSON path of an `Invalid` fault.
    pub fn path(&self) -> Option<&str> {
        match self {
            ModelError::Invalid { path, .. } => Some(path),
            ModelError::InUse { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn show_id(id: &str) -> String {
    if id.is_empty() {
        "(without id)".to_owned()
    } else {
        format!("{id:?}")
    }
}

fn show_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}
