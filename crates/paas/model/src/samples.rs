//! The sample definitions of `samples/`, embedded so the daemon can offer
//! them without the source tree (`strato up` registers and deploys them).

use crate::{parse, Change, Kind, ModelError};

/// The sample application's id.
pub const APPLICATION: &str = "php-mysql-app";
/// The application policy the sample application is deployed with.
pub const APPLICATION_POLICY: &str = "application-policy-local";

/// `(kind, file under samples/, JSON)`, in the order they must be added.
pub const FILES: &[(Kind, &str, &str)] = &[
    (
        Kind::KubernetesCluster,
        "kubernetes-clusters/local-cluster.json",
        include_str!("../samples/kubernetes-clusters/local-cluster.json"),
    ),
    (
        Kind::NetworkPartition,
        "network-partitions/network-partition-local.json",
        include_str!("../samples/network-partitions/network-partition-local.json"),
    ),
    (
        Kind::AutoscalingPolicy,
        "autoscaling-policies/autoscaling-policy-web.json",
        include_str!("../samples/autoscaling-policies/autoscaling-policy-web.json"),
    ),
    (
        Kind::DeploymentPolicy,
        "deployment-policies/deployment-policy-local.json",
        include_str!("../samples/deployment-policies/deployment-policy-local.json"),
    ),
    (
        Kind::ApplicationPolicy,
        "application-policies/application-policy-local.json",
        include_str!("../samples/application-policies/application-policy-local.json"),
    ),
    (
        Kind::Cartridge,
        "cartridges/mysql.json",
        include_str!("../samples/cartridges/mysql.json"),
    ),
    (
        Kind::Cartridge,
        "cartridges/php.json",
        include_str!("../samples/cartridges/php.json"),
    ),
    (
        Kind::CartridgeGroup,
        "cartridge-groups/php-mysql-group.json",
        include_str!("../samples/cartridge-groups/php-mysql-group.json"),
    ),
    (
        Kind::Application,
        "applications/php-mysql-app.json",
        include_str!("../samples/applications/php-mysql-app.json"),
    ),
];

/// The samples as one batch of `Add` changes.
pub fn changes() -> Result<Vec<Change>, ModelError> {
    FILES
        .iter()
        .map(|(kind, _, json)| parse(*kind, json.as_bytes()).map(Change::add))
        .collect()
}

/// The samples' folder name for a kind (Stratos's sample layout).
pub fn folder(kind: Kind) -> &'static str {
    match kind {
        Kind::Cartridge => "cartridges",
        Kind::CartridgeGroup => "cartridge-groups",
        Kind::Application => "applications",
        Kind::NetworkPartition => "network-partitions",
        Kind::DeploymentPolicy => "deployment-policies",
        Kind::ApplicationPolicy => "application-policies",
        Kind::AutoscalingPolicy => "autoscaling-policies",
        Kind::KubernetesCluster => "kubernetes-clusters",
    }
}
