//! Topology, lifecycle and scaling events, broadcast to `/api/events`.

use serde::{Deserialize, Serialize};
use strato_paas_model::scaling::{Action, Figures, GroupAction};
use strato_paas_store::MemberStatus;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub application_id: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum EventKind {
    /// The application was deployed (its clusters and listeners exist).
    #[serde(rename_all = "camelCase")]
    ApplicationDeployed { application_policy: String },
    /// Every cluster has its minimum of Active members.
    ApplicationActive,
    /// Undeploy began.
    ApplicationUndeploying,
    /// Every member is gone and the listeners are closed.
    ApplicationUndeployed,
    /// A member changed state.
    #[serde(rename_all = "camelCase")]
    MemberStatus {
        cluster_id: String,
        member_id: String,
        status: MemberStatus,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        ip: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
    },
    /// One autoscaler evaluation of a cluster (every second).
    #[serde(rename_all = "camelCase")]
    Scaling {
        cluster_id: String,
        figures: Figures,
        action: Action,
        requests_in_flight: usize,
    },
    /// The group monitor added or removed an instance of a group (or
    /// counted towards removing one).
    #[serde(rename_all = "camelCase")]
    GroupScaling {
        group: String,
        parent_instance_id: String,
        instances: u32,
        action: GroupAction,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        instance_id: Option<String>,
    },
    /// The application monitor burst into another network partition (a
    /// new application instance there), gave a burst one up, or counted
    /// towards that; `escalate`: at its maximum with no network partition
    /// left to burst into.
    #[serde(rename_all = "camelCase")]
    Bursting {
        instances: u32,
        action: GroupAction,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        instance_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        network_partition_id: Option<String>,
    },
    /// Level 2: a host provider gave a host to a cluster of hosts whose
    /// partitions had Pending members of this application.
    #[serde(rename_all = "camelCase")]
    HostAdded {
        kubernetes_cluster_id: String,
        host_id: String,
        provider: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cpu_millis: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        memory_bytes: Option<u64>,
    },
    /// Level 2: members wait, Pending, and the host provider had no host
    /// (or failed); it is asked again later.
    #[serde(rename_all = "camelCase")]
    HostUnavailable {
        kubernetes_cluster_id: String,
        provider: String,
        reason: String,
    },
    /// Something failed and will be retried.
    #[serde(rename_all = "camelCase")]
    Error { message: String },
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
