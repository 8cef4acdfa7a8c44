//! The definitions an operator registers, in Stratos 4.1's JSON shapes.
//!
//! Field names are those of Stratos's REST beans
//! (`org.apache.stratos.common.beans.*`), so a Stratos 4.1 document parses
//! unchanged. Fields Stratos knows but strato has no use for yet (IaaS
//! credentials, network interfaces, artifact repositories) are kept so a
//! definition reads back as it was written.
//!
//! Unknown fields are accepted and ignored, as Stratos's JAXB binding did;
//! a misspelt optional field is therefore silent, but a misspelt required one
//! (`cartridgeMax`, `imageId`, ids) fails validation with its path.

use crate::de;
use serde::{Deserialize, Serialize};

/// A `{name, value}` pair, Stratos's `PropertyBean`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Property {
    #[serde(deserialize_with = "de::text")]
    pub name: String,
    #[serde(default, deserialize_with = "de::text")]
    pub value: String,
}

/// Looks a property up by name (first match, as Stratos's `Properties` did).
pub fn property<'a>(props: &'a [Property], name: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

/// A cartridge: an image plus the metadata to run and expose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cartridge {
    #[serde(rename = "type", default, deserialize_with = "de::text")]
    pub cartridge_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub provider: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub category: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub host: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub display_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub description: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub multi_tenant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    #[serde(default, deserialize_with = "de::list")]
    pub port_mapping: Vec<PortMapping>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub metadata_keys: Vec<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub iaas_provider: Vec<IaasProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(
        default,
        rename = "loadBalancingIPType",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub load_balancing_ip_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
}

/// `deployment{baseDir, dir[]}` of a cartridge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub base_dir: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub dir: Vec<String>,
}

/// A port the cartridge listens on (`port`) and the port its load balancer
/// exposes (`proxyPort`; 0 means not exposed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::text")]
    pub protocol: String,
    #[serde(deserialize_with = "de::int")]
    pub port: i64,
    #[serde(default, deserialize_with = "de::int")]
    pub proxy_port: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub kubernetes_port_type: Option<String>,
}

/// Where and how a cartridge's image runs. For strato the `imageId` is an
/// image reference the engine resolves (`php:8`, `localhost/app:1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IaasProvider {
    #[serde(rename = "type", default, deserialize_with = "de::text")]
    pub provider_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub class_name: Option<String>,
    #[serde(default, deserialize_with = "de::text")]
    pub image_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub provider: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub identity: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub credential: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub network_interfaces: Vec<NetworkInterface>,
}

/// An IaaS network interface (kept, unused by the local provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub network_uuid: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub fixed_ip: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub port_uuid: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub floating_networks: Vec<FloatingNetwork>,
}

/// A floating network of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FloatingNetwork {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub network_uuid: Option<String>,
    #[serde(
        default,
        rename = "floatingIP",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub floating_ip: Option<String>,
}

/// `persistence{isRequired, volume[]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Persistence {
    #[serde(
        rename = "isRequired",
        alias = "required",
        default,
        deserialize_with = "de::boolean"
    )]
    pub is_required: bool,
    #[serde(default, alias = "volumes", deserialize_with = "de::list")]
    pub volume: Vec<Volume>,
}

/// One persistent volume; `mappingPath` is where it appears in the member.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub size: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub device: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub remove_on_termination: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub mapping_path: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub snapshot_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub volume_id: Option<String>,
}

/// `dependencies` of a group or application.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub startup_orders: Vec<AliasList>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub scaling_dependents: Vec<AliasList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_behaviour: Option<TerminationBehaviour>,
}

/// A list of `cartridge.ALIAS` / `group.ALIAS` references. Stratos 4.1 writes
/// `{"aliases": [...]}`; its 4.0-era form, one comma-separated string
/// (`"cartridge.a,cartridge.b"`), is accepted too and written back as the
/// object form.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AliasList {
    pub aliases: Vec<String>,
}

impl<'de> Deserialize<'de> for AliasList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default, deserialize_with = "de::list")]
            aliases: Vec<String>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AliasList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("{\"aliases\": [...]} or a comma-separated string of aliases")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<AliasList, E> {
                Ok(AliasList {
                    aliases: s
                        .split(',')
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AliasList, A::Error> {
                let o = Object::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(AliasList { aliases: o.aliases })
            }
        }
        d.deserialize_any(V)
    }
}

/// What happens to siblings when a member of a group terminates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminationBehaviour {
    /// Keep everything else running.
    #[serde(rename = "terminate-none")]
    TerminateNone,
    /// Terminate what depends (in startup order) on the terminated one.
    #[serde(rename = "terminate-dependents")]
    TerminateDependents,
    /// Terminate the whole group.
    #[serde(rename = "terminate-all")]
    TerminateAll,
}

/// A cartridge group definition: cartridge types and nested groups that are
/// deployed and scaled together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartridgeGroup {
    #[serde(default, deserialize_with = "de::text")]
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub groups: Vec<CartridgeGroup>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub cartridges: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub group_scaling_enabled: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    pub group_instance_monitoring_enabled: bool,
}

/// An application: a tree of cartridge subscriptions and group instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[serde(default, deserialize_with = "de::text")]
    pub application_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub alias: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub multi_tenant: bool,
    #[serde(default)]
    pub components: Components,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
}

/// The `components` of an application: its top-level children.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub groups: Vec<GroupRef>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub cartridges: Vec<CartridgeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
}

/// A group instance inside an application (`CartridgeGroupReferenceBean`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    #[serde(default, deserialize_with = "de::text")]
    pub name: String,
    #[serde(default, deserialize_with = "de::text")]
    pub alias: String,
    #[serde(default = "one", deserialize_with = "de::int")]
    pub group_min_instances: i64,
    #[serde(default = "one", deserialize_with = "de::int")]
    pub group_max_instances: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub deployment_policy: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub group_scaling_enabled: bool,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub cartridges: Vec<CartridgeRef>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub groups: Vec<GroupRef>,
}

fn one() -> i64 {
    1
}

/// A cartridge subscription inside an application (`CartridgeReferenceBean`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartridgeRef {
    #[serde(rename = "type", default, deserialize_with = "de::text")]
    pub cartridge_type: String,
    #[serde(default = "one", deserialize_with = "de::int")]
    pub cartridge_min: i64,
    #[serde(default = "one", deserialize_with = "de::int")]
    pub cartridge_max: i64,
    #[serde(default)]
    pub subscribable_info: SubscribableInfo,
}

/// How a cartridge is subscribed: its alias and policies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribableInfo {
    #[serde(default, deserialize_with = "de::text")]
    pub alias: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub deployment_policy: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub autoscaling_policy: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub dependency_aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_repository: Option<ArtifactRepository>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(
        default,
        rename = "lvsVirtualIP",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub lvs_virtual_ip: Option<String>,
}

/// A git repository of artifacts (kept; strato does not sync artifacts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRepository {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub alias: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub private_repo: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub repo_url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub repo_username: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub repo_password: Option<String>,
}

/// A network partition: a set of partitions (places members can run) behind
/// one provider. For strato's local provider, a partition is this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPartition {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub partitions: Vec<Partition>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub properties: Vec<Property>,
}

/// A partition of a network partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub description: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
}

/// A deployment policy: which partitions a cluster may use and how many
/// members each may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPolicy {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(default, deserialize_with = "de::list")]
    pub network_partitions: Vec<NetworkPartitionRef>,
}

/// A network partition as a deployment policy uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPartitionRef {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub provider: Option<String>,
    #[serde(default)]
    pub partition_algo: PartitionAlgorithm,
    #[serde(default, deserialize_with = "de::list")]
    pub partitions: Vec<PartitionRef>,
}

/// A partition as a deployment policy uses it, with its member cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionRef {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub description: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
    #[serde(default, deserialize_with = "de::int")]
    pub partition_max: i64,
}

/// How members are spread over the partitions of a network partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PartitionAlgorithm {
    /// Each new member goes to the partition with the fewest members.
    #[serde(rename = "round-robin")]
    RoundRobin,
    /// Fill the first partition to its `partitionMax`, then the next
    /// (Stratos's default when none is given).
    #[default]
    #[serde(rename = "one-after-another")]
    OneAfterAnother,
}

/// An application policy: which network partitions an application uses and
/// how (`one-after-another`: the first, bursting to the next when it is at
/// its maximum; `all-at-once`: all of them together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPolicy {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(default)]
    pub algorithm: NetworkPartitionAlgorithm,
    #[serde(default, deserialize_with = "de::list")]
    pub network_partitions: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub properties: Vec<Property>,
}

/// How an application uses its network partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkPartitionAlgorithm {
    /// Use the first; burst to the next when a cluster is at its maximum.
    #[default]
    #[serde(rename = "one-after-another")]
    OneAfterAnother,
    /// Run in every network partition at once.
    #[serde(rename = "all-at-once")]
    AllAtOnce,
}

/// An autoscaling policy: per-member thresholds of the three statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalePolicy {
    #[serde(default, deserialize_with = "de::text")]
    pub id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub display_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub description: Option<String>,
    #[serde(default)]
    pub load_thresholds: LoadThresholds,
    /// Fraction above which a dependent-scaling count is rounded up
    /// (Stratos's `instanceRoundingFactor`; 0 rounds up any fraction).
    #[serde(default, deserialize_with = "de::float")]
    pub instance_rounding_factor: f64,
}

/// `loadThresholds`; a statistic without a threshold does not drive scaling.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadThresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_in_flight: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_consumption: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average: Option<Threshold>,
}

/// `{threshold}`: requests in flight per member, or a percentage for memory
/// consumption and load average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    #[serde(deserialize_with = "de::float")]
    pub threshold: f64,
}

/// A Kubernetes cluster in Stratos's shape; strato reads it as declared host
/// capacity: each `kubernetesHost` is a host members can be placed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCluster {
    #[serde(default, deserialize_with = "de::text")]
    pub cluster_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub kubernetes_hosts: Vec<KubernetesHost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_master: Option<KubernetesHost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortRange>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
}

/// A host (or the master) of a Kubernetes cluster. Capacity is declared in
/// `property`: `cpu` (cores, a Kubernetes quantity like `4` or `3500m`) and
/// `memory` (bytes, a quantity like `8Gi`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesHost {
    #[serde(default, deserialize_with = "de::text")]
    pub host_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub hostname: Option<String>,
    #[serde(
        default,
        rename = "privateIPAddress",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub private_ip_address: Option<String>,
    #[serde(
        default,
        rename = "publicIPAddress",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub public_ip_address: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_text"
    )]
    pub endpoint: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de::list"
    )]
    pub property: Vec<Property>,
}

/// The range service ports are taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    #[serde(deserialize_with = "de::int")]
    pub upper: i64,
    #[serde(deserialize_with = "de::int")]
    pub lower: i64,
}
