//! strato's PaaS model: Apache Stratos 4.1's definitions, their validation,
//! deployment planning and the autoscaling rule math, with no I/O.
//!
//! Entry points:
//! - [`parse`] turns a Stratos 4.1 JSON document of a given [`Kind`] into a
//!   checked [`Definition`]; faults carry the JSON path (`components.cartridges[1].cartridgeMax`).
//! - [`Catalog::apply`] applies a batch of [`Change`]s whole-or-nothing,
//!   checking every reference (types, groups, policies, aliases, cycles, in-use).
//! - [`plan::plan`] computes an application's clusters, startup order and
//!   initial member placement.
//! - [`scaling::ScalingState`] is the per-cluster autoscaler state machine
//!   (Stratos's predictive rule), fed with samples and a clock value;
//!   [`scaling::group_decision`] is the group-scaling step above it.
//! - [`lifecycle::MemberStatus`] is a member's lifecycle and its moves.
//! - [`capacity::HostPool`] tracks the declared cpu and memory of the hosts
//!   behind a partition and places members on them (level 2).
//! - [`samples`] embeds the sample definitions of `samples/`.
//!
//! Stratos 4.1 documents parse unchanged: field names are its REST beans',
//! scalars may be strings (`"port": "80"`), a one-element list may be a bare
//! element, and unknown fields are ignored as its JAXB binding ignored them.

#![forbid(unsafe_code)]

pub mod capacity;
mod catalog;
mod de;
mod error;
#[cfg(test)]
mod fixtures;
pub mod lifecycle;
pub mod plan;
pub mod quantity;
pub mod samples;
pub mod scaling;
mod types;
mod validate;

pub use catalog::{Catalog, Change};
pub use error::{Kind, ModelError};
pub use types::*;

use serde::de::DeserializeOwned;

/// One definition of any kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Definition {
    Cartridge(Cartridge),
    CartridgeGroup(CartridgeGroup),
    Application(Application),
    NetworkPartition(NetworkPartition),
    DeploymentPolicy(DeploymentPolicy),
    ApplicationPolicy(ApplicationPolicy),
    AutoscalingPolicy(AutoscalePolicy),
    KubernetesCluster(KubernetesCluster),
}

impl Definition {
    /// The kind of this definition.
    pub fn kind(&self) -> Kind {
        match self {
            Definition::Cartridge(_) => Kind::Cartridge,
            Definition::CartridgeGroup(_) => Kind::CartridgeGroup,
            Definition::Application(_) => Kind::Application,
            Definition::NetworkPartition(_) => Kind::NetworkPartition,
            Definition::DeploymentPolicy(_) => Kind::DeploymentPolicy,
            Definition::ApplicationPolicy(_) => Kind::ApplicationPolicy,
            Definition::AutoscalingPolicy(_) => Kind::AutoscalingPolicy,
            Definition::KubernetesCluster(_) => Kind::KubernetesCluster,
        }
    }

    /// Its id (cartridge type, group name, application id, policy id, ...).
    pub fn id(&self) -> &str {
        match self {
            Definition::Cartridge(c) => &c.cartridge_type,
            Definition::CartridgeGroup(g) => &g.name,
            Definition::Application(a) => &a.application_id,
            Definition::NetworkPartition(n) => &n.id,
            Definition::DeploymentPolicy(p) => &p.id,
            Definition::ApplicationPolicy(p) => &p.id,
            Definition::AutoscalingPolicy(p) => &p.id,
            Definition::KubernetesCluster(k) => &k.cluster_id,
        }
    }

    /// The definition as JSON in Stratos's shape.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these plain data types into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks this definition on its own (no references to others).
    pub fn validate(&self) -> Result<(), ModelError> {
        validate::definition(self)
    }
}

/// Parses and checks one definition of `kind` from Stratos 4.1 JSON.
///
/// Type errors name the JSON path of the fault; semantic faults (bounds,
/// ids, duplicates, cycles inside the document) too. References to other
/// definitions are checked by [`Catalog::apply`].
pub fn parse(kind: Kind, json: &[u8]) -> Result<Definition, ModelError> {
    let def = match kind {
        Kind::Cartridge => Definition::Cartridge(decode(kind, json)?),
        Kind::CartridgeGroup => Definition::CartridgeGroup(decode(kind, json)?),
        Kind::Application => Definition::Application(decode(kind, json)?),
        Kind::NetworkPartition => Definition::NetworkPartition(decode(kind, json)?),
        Kind::DeploymentPolicy => Definition::DeploymentPolicy(decode(kind, json)?),
        Kind::ApplicationPolicy => Definition::ApplicationPolicy(decode(kind, json)?),
        Kind::AutoscalingPolicy => Definition::AutoscalingPolicy(decode(kind, json)?),
        Kind::KubernetesCluster => Definition::KubernetesCluster(decode(kind, json)?),
    };
    def.validate()?;
    Ok(def)
}

fn decode<T: DeserializeOwned>(kind: Kind, json: &[u8]) -> Result<T, ModelError> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {inner}")
        } else {
            // serde_json appends " at line L column C"; keep it, it helps.
            inner.to_string()
        };
        // Name the definition if its id field at least is readable.
        let id = serde_json::from_slice::<serde_json::Value>(json)
            .ok()
            .and_then(|v| {
                v.get(kind.id_field())
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        ModelError::Invalid {
            kind,
            id,
            path: if path == "." { String::new() } else { path },
            message,
        }
    })
}
