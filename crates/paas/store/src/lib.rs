//! strato's PaaS store: the catalog of definitions, deployments and member
//! records in one redb file, so a daemon restart sees exactly what was
//! committed.
//!
//! Entry point: [`Store::open`], then [`Store::apply`] for definition and
//! deployment changes. `apply` checks the whole resulting catalog first
//! ([`Catalog::apply`]) and writes every changed record in one redb write
//! transaction; a refused change writes nothing, and the in-memory catalog
//! is replaced only after the commit.
//!
//! Tables (keys are UTF-8, values JSON):
//! - `definitions`: `RESOURCE/ID` (`cartridges/php`) → the definition in
//!   Stratos's JSON shape;
//! - `deployments`: application id → [`DeploymentRecord`];
//! - `members`: member id → [`MemberRecord`], for reconciliation;
//! - `meta`: `schema` → the layout version.
//!
//! Member writes come in two strengths. A record written before its
//! container is created must be on disk first ([`Store::put_members`],
//! many in one fsync'd commit); the lifecycle's later changes (container
//! id, status, removal) are deferred ([`Store::defer_members`],
//! [`Store::defer_member_status`]): committed at once for readers, made
//! durable by the next [`Store::flush`] or durable commit. A crash may lose
//! deferred changes; the controller's restore works from the containers'
//! labels and its probes, so it only redoes them.

#![forbid(unsafe_code)]

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
pub use strato_paas_model::lifecycle::MemberStatus;
use strato_paas_model::{parse, Catalog, Change, Kind, ModelError};

const DEFINITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("definitions");
const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version this code reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change was refused by the model's checks; nothing was written.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// redb failed (I/O, a lock held by another process, a torn file).
    #[error("paas store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    /// A record does not decode: the file was changed outside strato.
    #[error("paas store {path}: record {table}/{key} is unreadable: {message}; restore a backup or remove the record")]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        key: String,
        message: String,
    },
    /// The file was written by a strato with another layout.
    #[error(
        "paas store {path}: layout version {found}, this strato reads version {SCHEMA_VERSION}"
    )]
    Version { path: PathBuf, found: u64 },
    /// A member or deployment record names no deployed application.
    #[error("application {0:?} is not deployed")]
    NotDeployed(String),
    /// No member record has this id.
    #[error("member {0:?} is not known")]
    NoMember(String),
    /// A member status change the lifecycle does not allow.
    #[error("member {member:?} cannot go from {from} to {to}")]
    Transition {
        member: String,
        from: MemberStatus,
        to: MemberStatus,
    },
}

/// Where a deployed application is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeploymentStatus {
    /// Members are being created in startup order.
    Deploying,
    /// Every cluster reached its minimum of Active members.
    Active,
    /// Members are being terminated.
    Undeploying,
}

/// A deployed application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub application_id: String,
    pub application_policy: String,
    pub status: DeploymentStatus,
}

/// One member: which container serves which cluster where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    pub member_id: String,
    pub application_id: String,
    pub cluster_id: String,
    pub network_partition: String,
    pub partition: String,
    /// The group instance it belongs to (`ALIAS-N`, nested ones as
    /// `OUTER-N/INNER-M`); empty outside groups. Records written before
    /// group instances existed read as empty and are re-homed on restore.
    #[serde(default)]
    pub instance_id: String,
    /// The engine container, once created.
    pub container_id: Option<String>,
    pub status: MemberStatus,
    /// Milliseconds since the Unix epoch of the last status change.
    pub updated_ms: i64,
}

/// The open store and the catalog it holds.
pub struct Store {
    path: PathBuf,
    db: Database,
    catalog: Catalog,
    /// Deferred commits not yet made durable.
    deferred: AtomicBool,
}

fn key(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.resource())
}

impl Store {
    /// Opens (or creates) the store at `path` and loads the catalog,
    /// checking it as a whole.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).db(path)?;
        // Definitions may hold credentials (repoPassword, IaaS identity):
        // only the daemon's user reads the file.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| StoreError::Db {
                path: path.to_owned(),
                source: Box::new(redb::Error::Io(e)),
            })?;
        let mut store = Store {
            path: path.to_owned(),
            db,
            catalog: Catalog::new(),
            deferred: AtomicBool::new(false),
        };
        store.init()?;
        store.catalog = store.load()?;
        Ok(store)
    }

    fn init(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().db(&self.path)?;
        {
            let mut meta = txn.open_table(META).db(&self.path)?;
            let found = meta.get("schema").db(&self.path)?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema", SCHEMA_VERSION).db(&self.path)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::Version {
                        path: self.path.clone(),
                        found,
                    })
                }
            }
            txn.open_table(DEFINITIONS).db(&self.path)?;
            txn.open_table(DEPLOYMENTS).db(&self.path)?;
            txn.open_table(MEMBERS).db(&self.path)?;
        }
        txn.commit().db(&self.path)?;
        Ok(())
    }

    fn corrupt(&self, table: &'static str, key: &str, message: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            table,
            key: key.to_owned(),
            message: message.to_string(),
        }
    }

    fn load(&self) -> Result<Catalog, StoreError> {
        let txn = self.db.begin_read().db(&self.path)?;
        let defs = txn.open_table(DEFINITIONS).db(&self.path)?;
        let mut changes = Vec::new();
        for entry in defs.iter().db(&self.path)? {
            let (k, v) = entry.db(&self.path)?;
            let k = k.value();
            let (resource, _) = k
                .split_once('/')
                .ok_or_else(|| self.corrupt("definitions", k, "the key has no kind"))?;
            let kind = Kind::from_resource(resource)
                .ok_or_else(|| self.corrupt("definitions", k, "unknown kind"))?;
            let def = parse(kind, v.value()).map_err(|e| self.corrupt("definitions", k, e))?;
            if key(kind, def.id()) != k {
                return Err(self.corrupt("definitions", k, "the key does not match the id"));
            }
            changes.push(Change::add(def));
        }
        let deps = txn.open_table(DEPLOYMENTS).db(&self.path)?;
        for entry in deps.iter().db(&self.path)? {
            let (k, v) = entry.db(&self.path)?;
            let rec: DeploymentRecord = serde_json::from_slice(v.value())
                .map_err(|e| self.corrupt("deployments", k.value(), e))?;
            changes.push(Change::Deploy {
                application_id: rec.application_id,
                application_policy: rec.application_policy,
            });
        }
        Catalog::new().apply(&changes).map_err(|e| {
            self.corrupt(
                "definitions",
                "*",
                format!("the stored catalog is inconsistent: {e}"),
            )
        })
    }

    /// The committed catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Checks `changes` against the whole catalog and, if they pass, commits
    /// them in one transaction. On any error nothing is written and the
    /// catalog is unchanged.
    pub fn apply(&mut self, changes: &[Change]) -> Result<&Catalog, StoreError> {
        let next = self.catalog.apply(changes)?;
        let txn = self.db.begin_write().db(&self.path)?;
        {
            let mut defs = txn.open_table(DEFINITIONS).db(&self.path)?;
            let mut deps = txn.open_table(DEPLOYMENTS).db(&self.path)?;
            // Write the difference between the catalogs: every definition
            // added, replaced or removed by the batch.
            for kind in Kind::ALL {
                let (old, new) = (self.catalog.ids(kind), next.ids(kind));
                for id in &old {
                    if !new.contains(id) {
                        defs.remove(key(kind, id).as_str()).db(&self.path)?;
                    }
                }
                for id in &new {
                    let now = next.get(kind, id);
                    if self.catalog.get(kind, id) != now {
                        if let Some(def) = now {
                            defs.insert(key(kind, id).as_str(), def.to_json().as_slice())
                                .db(&self.path)?;
                        }
                    }
                }
            }
            for app in self.catalog.deployments.keys() {
                if !next.deployments.contains_key(app) {
                    deps.remove(app.as_str()).db(&self.path)?;
                }
            }
            for (app, policy) in &next.deployments {
                if !self.catalog.deployments.contains_key(app) {
                    let rec = DeploymentRecord {
                        application_id: app.clone(),
                        application_policy: policy.clone(),
                        status: DeploymentStatus::Deploying,
                    };
                    deps.insert(app.as_str(), to_json(&rec).as_slice())
                        .db(&self.path)?;
                }
            }
        }
        self.commit(txn, Durability::Immediate)?;
        self.catalog = next;
        Ok(&self.catalog)
    }

    /// Every deployment record, by application id.
    pub fn deployments(&self) -> Result<BTreeMap<String, DeploymentRecord>, StoreError> {
        self.read_all(DEPLOYMENTS, "deployments")
    }

    /// Sets a deployed application's status.
    pub fn set_deployment_status(
        &self,
        application_id: &str,
        status: DeploymentStatus,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().db(&self.path)?;
        {
            let mut deps = txn.open_table(DEPLOYMENTS).db(&self.path)?;
            let mut rec: DeploymentRecord = match deps.get(application_id).db(&self.path)? {
                Some(v) => serde_json::from_slice(v.value())
                    .map_err(|e| self.corrupt("deployments", application_id, e))?,
                None => return Err(StoreError::NotDeployed(application_id.to_owned())),
            };
            rec.status = status;
            deps.insert(application_id, to_json(&rec).as_slice())
                .db(&self.path)?;
        }
        self.commit(txn, Durability::Immediate)?;
        Ok(())
    }

    /// Records a member (insert or replace). Its application must be deployed.
    pub fn put_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        if !self
            .catalog
            .deployments
            .contains_key(&member.application_id)
        {
            return Err(StoreError::NotDeployed(member.application_id.clone()));
        }
        self.write_members(std::slice::from_ref(member), &[])
    }

    /// Records members (insert or replace) in one durable commit: one
    /// fsync for a whole scaling decision. Their applications must be
    /// deployed; on error nothing is written.
    pub fn put_members(&self, members: &[MemberRecord]) -> Result<(), StoreError> {
        if let Some(m) = members
            .iter()
            .find(|m| !self.catalog.deployments.contains_key(&m.application_id))
        {
            return Err(StoreError::NotDeployed(m.application_id.clone()));
        }
        self.write_members(members, &[])
    }

    /// Inserts or replaces `put` and removes `remove` in one durable transaction.
    pub fn write_members(&self, put: &[MemberRecord], remove: &[&str]) -> Result<(), StoreError> {
        self.write_members_with(put, remove, Durability::Immediate)
    }

    /// Like [`Store::write_members`], deferred: visible at once, durable
    /// after the next [`Store::flush`] (or any durable commit).
    pub fn defer_members(&self, put: &[MemberRecord], remove: &[&str]) -> Result<(), StoreError> {
        self.write_members_with(put, remove, Durability::None)
    }

    /// Makes the deferred commits durable (one fsync'd commit); does
    /// nothing when there are none. Returns whether it committed.
    pub fn flush(&self) -> Result<bool, StoreError> {
        if !self.deferred.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let r = (|| {
            let txn = self.db.begin_write().db(&self.path)?;
            txn.commit().db(&self.path)
        })();
        if r.is_err() {
            self.deferred.store(true, Ordering::Release);
        }
        r.map(|()| true)
    }

    /// Whether deferred commits wait for a [`Store::flush`].
    pub fn has_deferred(&self) -> bool {
        self.deferred.load(Ordering::Acquire)
    }

    fn begin(&self, durability: Durability) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().db(&self.path)?;
        txn.set_durability(durability);
        Ok(txn)
    }

    fn commit(
        &self,
        txn: redb::WriteTransaction,
        durability: Durability,
    ) -> Result<(), StoreError> {
        txn.commit().db(&self.path)?;
        match durability {
            Durability::None => self.deferred.store(true, Ordering::Release),
            // A durable commit persists the deferred ones before it too.
            _ => self.deferred.store(false, Ordering::Release),
        }
        Ok(())
    }

    fn write_members_with(
        &self,
        put: &[MemberRecord],
        remove: &[&str],
        durability: Durability,
    ) -> Result<(), StoreError> {
        let txn = self.begin(durability)?;
        {
            let mut t = txn.open_table(MEMBERS).db(&self.path)?;
            for m in put {
                t.insert(m.member_id.as_str(), to_json(m).as_slice())
                    .db(&self.path)?;
            }
            for id in remove {
                t.remove(*id).db(&self.path)?;
            }
        }
        self.commit(txn, durability)
    }

    /// Moves a member to `status` if its lifecycle allows it, in one
    /// transaction; returns the updated record.
    pub fn set_member_status(
        &self,
        member_id: &str,
        status: MemberStatus,
        now_ms: i64,
    ) -> Result<MemberRecord, StoreError> {
        self.set_member_status_with(member_id, status, now_ms, Durability::Immediate)
    }

    /// Like [`Store::set_member_status`], deferred (see [`Store::defer_members`]).
    pub fn defer_member_status(
        &self,
        member_id: &str,
        status: MemberStatus,
        now_ms: i64,
    ) -> Result<MemberRecord, StoreError> {
        self.set_member_status_with(member_id, status, now_ms, Durability::None)
    }

    fn set_member_status_with(
        &self,
        member_id: &str,
        status: MemberStatus,
        now_ms: i64,
        durability: Durability,
    ) -> Result<MemberRecord, StoreError> {
        let txn = self.begin(durability)?;
        let rec = {
            let mut t = txn.open_table(MEMBERS).db(&self.path)?;
            let mut rec: MemberRecord = match t.get(member_id).db(&self.path)? {
                Some(v) => serde_json::from_slice(v.value())
                    .map_err(|e| self.corrupt("members", member_id, e))?,
                None => return Err(StoreError::NoMember(member_id.to_owned())),
            };
            if !rec.status.can_become(status) {
                return Err(StoreError::Transition {
                    member: member_id.to_owned(),
                    from: rec.status,
                    to: status,
                });
            }
            rec.status = status;
            rec.updated_ms = now_ms;
            t.insert(member_id, to_json(&rec).as_slice())
                .db(&self.path)?;
            rec
        };
        self.commit(txn, durability)?;
        Ok(rec)
    }

    /// Forgets a member.
    pub fn remove_member(&self, member_id: &str) -> Result<(), StoreError> {
        self.write_members(&[], &[member_id])
    }

    /// Every member record, by member id.
    pub fn members(&self) -> Result<BTreeMap<String, MemberRecord>, StoreError> {
        self.read_all(MEMBERS, "members")
    }

    /// How many member records there are.
    pub fn member_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().db(&self.path)?;
        let t = txn.open_table(MEMBERS).db(&self.path)?;
        t.len().db(&self.path)
    }

    fn read_all<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        name: &'static str,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let txn = self.db.begin_read().db(&self.path)?;
        let t = txn.open_table(table).db(&self.path)?;
        let mut out = BTreeMap::new();
        for entry in t.iter().db(&self.path)? {
            let (k, v) = entry.db(&self.path)?;
            let rec =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(name, k.value(), e))?;
            out.insert(k.value().to_owned(), rec);
        }
        Ok(out)
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain records serialize to memory without failing.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Attaches the store's path to redb's many error types.
trait DbResult<T> {
    fn db(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for Result<T, E> {
    fn db(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db {
            path: path.to_owned(),
            source: Box::new(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_paas_model::samples;

    fn raw(path: &Path) -> Vec<(String, Vec<u8>)> {
        let db = Database::create(path).unwrap();
        let txn = db.begin_read().unwrap();
        let mut out = Vec::new();
        for table in [DEFINITIONS, DEPLOYMENTS, MEMBERS] {
            let t = txn.open_table(table).unwrap();
            for e in t.iter().unwrap() {
                let (k, v) = e.unwrap();
                out.push((k.value().to_owned(), v.value().to_vec()));
            }
        }
        out
    }

    fn deploy() -> Change {
        Change::Deploy {
            application_id: samples::APPLICATION.into(),
            application_policy: samples::APPLICATION_POLICY.into(),
        }
    }

    fn member(id: &str) -> MemberRecord {
        MemberRecord {
            member_id: id.into(),
            application_id: samples::APPLICATION.into(),
            cluster_id: "php-mysql-app.my-php.php.domain".into(),
            network_partition: "network-partition-local".into(),
            partition: "partition-a".into(),
            instance_id: "my-php-mysql-1".into(),
            container_id: Some(format!("c-{id}")),
            status: MemberStatus::Active,
            updated_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_member_record_without_an_instance_reads_as_outside_groups() {
        let old = r#"{"memberId":"m","applicationId":"a","clusterId":"c",
            "networkPartition":"np","partition":"p","containerId":null,
            "status":"Active","updatedMs":1}"#;
        let rec: MemberRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.instance_id, "");
        let back: MemberRecord =
            serde_json::from_slice(&serde_json::to_vec(&member("m")).unwrap()).unwrap();
        assert_eq!(back.instance_id, "my-php-mysql-1");
    }

    #[test]
    fn a_reopened_store_holds_exactly_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        let (catalog, members) = {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(s.catalog(), &Catalog::new());
            s.apply(&samples::changes().unwrap()).unwrap();
            s.apply(&[deploy()]).unwrap();
            s.set_deployment_status(samples::APPLICATION, DeploymentStatus::Active)
                .unwrap();
            s.put_member(&member("m1")).unwrap();
            s.put_member(&member("m2")).unwrap();
            s.write_members(
                &[MemberRecord {
                    status: MemberStatus::Starting,
                    ..member("m3")
                }],
                &["m1"],
            )
            .unwrap();
            (s.catalog().clone(), s.members().unwrap())
        };
        let s = Store::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(s.catalog(), &catalog);
        assert_eq!(s.catalog().cartridges.len(), 2);
        assert_eq!(
            s.catalog().deployments[samples::APPLICATION],
            samples::APPLICATION_POLICY
        );
        let deps = s.deployments().unwrap();
        assert_eq!(deps[samples::APPLICATION].status, DeploymentStatus::Active);
        assert_eq!(s.members().unwrap(), members);
        assert_eq!(members.keys().collect::<Vec<_>>(), ["m2", "m3"]);
        assert_eq!(s.member_count().unwrap(), 2);
        assert_eq!(members["m3"].status, MemberStatus::Starting);
        let m3 = s.set_member_status("m3", MemberStatus::Active, 5).unwrap();
        assert_eq!((m3.status, m3.updated_ms), (MemberStatus::Active, 5));
        let e = s
            .set_member_status("m3", MemberStatus::Starting, 6)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "member \"m3\" cannot go from Active to Starting"
        );
        assert!(matches!(
            s.set_member_status("m9", MemberStatus::Active, 6),
            Err(StoreError::NoMember(_))
        ));
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.members().unwrap()["m3"].status, MemberStatus::Active);
    }

    #[test]
    fn deferred_member_writes_are_read_at_once_and_kept_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        {
            let mut s = Store::open(&path).unwrap();
            s.apply(&samples::changes().unwrap()).unwrap();
            s.apply(&[deploy()]).unwrap();
            // One durable commit for a batch; a member of an application
            // that is not deployed refuses the whole batch.
            let stray = MemberRecord {
                application_id: "other-app".into(),
                ..member("m9")
            };
            let e = s.put_members(&[member("m1"), stray]).unwrap_err();
            assert!(
                matches!(e, StoreError::NotDeployed(ref a) if a == "other-app"),
                "{e}"
            );
            assert_eq!(s.member_count().unwrap(), 0);
            let created = |id: &str| MemberRecord {
                status: MemberStatus::Created,
                ..member(id)
            };
            s.put_members(&[created("m1"), created("m2"), created("m3")])
                .unwrap();
            assert!(!s.has_deferred());
            assert!(!s.flush().unwrap(), "nothing to flush");
            s.defer_member_status("m1", MemberStatus::Initialized, 7)
                .unwrap();
            s.defer_members(&[], &["m2"]).unwrap();
            assert!(s.has_deferred());
            // Readers see deferred changes at once.
            let m = s.members().unwrap();
            assert_eq!(m.keys().collect::<Vec<_>>(), ["m1", "m3"]);
            assert_eq!(m["m1"].status, MemberStatus::Initialized);
            // The lifecycle is checked as for a durable change.
            let e = s
                .defer_member_status("m1", MemberStatus::Created, 8)
                .unwrap_err();
            assert!(matches!(e, StoreError::Transition { .. }), "{e}");
            assert!(s.flush().unwrap());
            assert!(!s.has_deferred());
            // A durable commit persists the deferred ones before it.
            s.defer_member_status("m3", MemberStatus::Initialized, 9)
                .unwrap();
            s.set_deployment_status(samples::APPLICATION, DeploymentStatus::Active)
                .unwrap();
            assert!(!s.has_deferred());
        }
        let s = Store::open(&path).unwrap();
        let m = s.members().unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["m1", "m3"]);
        assert_eq!(m["m1"].status, MemberStatus::Initialized);
        assert_eq!(m["m3"].status, MemberStatus::Initialized);
    }

    #[test]
    fn a_refused_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        let before = {
            let mut s = Store::open(&path).unwrap();
            s.apply(&samples::changes().unwrap()).unwrap();
            s.apply(&[deploy()]).unwrap();
            let catalog = s.catalog().clone();
            // A valid removal and an invalid one in one batch.
            let e = s
                .apply(&[
                    Change::Remove(Kind::KubernetesCluster, "local-cluster".into()),
                    Change::Remove(Kind::Cartridge, "php".into()),
                ])
                .unwrap_err();
            assert!(
                matches!(e, StoreError::Model(ModelError::InUse { .. })),
                "{e}"
            );
            assert!(
                e.to_string().contains("cannot remove kubernetes cluster"),
                "{e}"
            );
            assert_eq!(s.catalog(), &catalog);
            let e = s.apply(&[Change::Remove(
                Kind::Application,
                samples::APPLICATION.into(),
            )]);
            assert!(matches!(
                e,
                Err(StoreError::Model(ModelError::Deployed { .. }))
            ));
            catalog
        };
        let stored = raw(&path);
        assert_eq!(stored.len(), 9 + 1, "nine definitions and one deployment");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.catalog(), &before);
        drop(s);
        assert_eq!(raw(&path), stored);
    }

    #[test]
    fn removals_and_updates_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        {
            let mut s = Store::open(&path).unwrap();
            s.apply(&samples::changes().unwrap()).unwrap();
            s.apply(&[deploy()]).unwrap();
            s.apply(&[Change::Undeploy {
                application_id: samples::APPLICATION.into(),
            }])
            .unwrap();
            let mut php = s.catalog().cartridges["php"].clone();
            php.description = Some("changed".into());
            s.apply(&[
                Change::Remove(Kind::Application, samples::APPLICATION.into()),
                Change::update(strato_paas_model::Definition::Cartridge(php)),
            ])
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert!(s.catalog().applications.is_empty());
        assert!(s.deployments().unwrap().is_empty());
        assert_eq!(
            s.catalog().cartridges["php"].description.as_deref(),
            Some("changed")
        );
        let e = s.put_member(&member("m1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "application \"php-mysql-app\" is not deployed"
        );
        let e = s
            .set_deployment_status("php-mysql-app", DeploymentStatus::Active)
            .unwrap_err();
        assert!(matches!(e, StoreError::NotDeployed(_)));
    }

    #[test]
    fn a_tampered_file_is_refused_with_the_record_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        drop(Store::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(DEFINITIONS)
                .unwrap()
                .insert(
                    "cartridges/php",
                    br#"{"type": "php", "portMapping": [{"port": "x"}]}"#.as_slice(),
                )
                .unwrap();
            txn.commit().unwrap();
        }
        let e = Store::open(&path).err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("record definitions/cartridges/php is unreadable"),
            "{msg}"
        );
        assert!(msg.contains("portMapping[0].port"), "{msg}");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let mut t = txn.open_table(DEFINITIONS).unwrap();
            t.remove("cartridges/php").unwrap();
            t.insert("gadgets/x", b"{}".as_slice()).unwrap();
            drop(t);
            txn.commit().unwrap();
        }
        let msg = Store::open(&path).err().unwrap().to_string();
        assert!(
            msg.contains("gadgets/x is unreadable: unknown kind"),
            "{msg}"
        );
    }

    #[test]
    fn another_layout_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("schema", 99).unwrap();
            txn.commit().unwrap();
        }
        let e = Store::open(&path).err().unwrap();
        assert!(matches!(e, StoreError::Version { found: 99, .. }), "{e}");
    }

    #[test]
    fn a_second_open_of_the_same_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paas.redb");
        let _first = Store::open(&path).unwrap();
        let e = Store::open(&path).err().unwrap();
        assert!(matches!(e, StoreError::Db { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("paas store {}", path.display())),
            "{e}"
        );
    }
}
