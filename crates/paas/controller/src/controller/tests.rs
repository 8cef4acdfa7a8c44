//! The controller against a fake engine, with tokio's clock paused: the
//! decisions (startup order, lifecycle, replacement, scale-out placement,
//! undeploy order, adoption on restart, group instances nested or not,
//! application bursting, scaling dependents) without containers. Each
//! test starts from a [`Harness`].

use super::*;
use crate::fake::Fake;
use strato_paas_model::samples;
use strato_paas_model::scaling::GroupAction;

const PHP: &str = "php-mysql-app.my-php.php.domain";
const MYSQL: &str = "php-mysql-app.my-mysql.mysql.domain";

/// A port offset under which the samples' proxy ports are free on 127.0.0.1.
pub(crate) fn free_offset() -> i32 {
    for _ in 0..100 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = i32::from(l.local_addr().unwrap().port());
        let off = p - 8280;
        if 13306 + off < 65_000
            && std::net::TcpListener::bind(("127.0.0.1", (13306 + off) as u16)).is_ok()
        {
            drop(l);
            return off;
        }
    }
    panic!("no free ports");
}

pub(crate) fn controller(fake: &Fake, dir: &std::path::Path, offset: i32) -> Controller<Fake> {
    controller_with(fake, dir, offset, Arc::new(LocalMachine))
}

/// [`controller`] with `hosts` as the level-2 host provider.
fn controller_with(
    fake: &Fake,
    dir: &std::path::Path,
    offset: i32,
    hosts: Arc<dyn HostProvider>,
) -> Controller<Fake> {
    let path = dir.join("paas.redb");
    let fresh = !path.exists();
    let mut store = Store::open(&path).unwrap();
    if fresh {
        store.apply(&samples::changes().unwrap()).unwrap();
    }
    let config = Config {
        port_offset: offset,
        lb_addr: IpAddr::from([127, 0, 0, 1]),
        drain_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    Controller::with_host_provider(fake.clone(), store, config, hosts)
}

/// One tick at `base + i` seconds, then lets the spawned tasks run.
async fn tick(ctl: &Controller<Fake>, base: i64, i: i64) {
    ctl.reconcile_once(base + i * 1000).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// What the tests here start from: a fake engine, a store in a
/// temporary directory holding the definitions, a controller over both,
/// and the clock base of the ticks.
struct Harness {
    dir: tempfile::TempDir,
    fake: Fake,
    offset: i32,
    ctl: Controller<Fake>,
    base: i64,
}

impl Harness {
    /// The samples in a new store.
    fn new() -> Harness {
        Harness::with(samples::changes().unwrap())
    }

    /// `changes` in a new store.
    fn with(changes: Vec<Change>) -> Harness {
        Harness::with_fake(changes, Fake::default())
    }

    /// `changes` in a new store, over `fake` (set up beforehand).
    fn with_fake(changes: Vec<Change>, fake: Fake) -> Harness {
        Harness::with_hosts(changes, fake, Arc::new(LocalMachine))
    }

    /// `changes` in a new store, over `fake`, with `hosts` as the host
    /// provider.
    fn with_hosts(changes: Vec<Change>, fake: Fake, hosts: Arc<dyn HostProvider>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        Store::open(&dir.path().join("paas.redb"))
            .unwrap()
            .apply(&changes)
            .unwrap();
        Harness::over_with(dir, fake, free_offset(), hosts)
    }

    /// A controller over the store in `dir` and `fake`.
    fn over(dir: tempfile::TempDir, fake: Fake, offset: i32) -> Harness {
        Harness::over_with(dir, fake, offset, Arc::new(LocalMachine))
    }

    /// [`Harness::over`] with `hosts` as the host provider.
    fn over_with(
        dir: tempfile::TempDir,
        fake: Fake,
        offset: i32,
        hosts: Arc<dyn HostProvider>,
    ) -> Harness {
        let ctl = controller_with(&fake, dir.path(), offset, hosts);
        Harness {
            dir,
            fake,
            offset,
            ctl,
            base: now_ms(),
        }
    }

    /// The sample application deployed over `changes`.
    fn deployed(changes: Vec<Change>) -> Harness {
        let h = Harness::with(changes);
        h.deploy();
        h
    }

    fn deploy(&self) {
        self.ctl
            .deploy(samples::APPLICATION, samples::APPLICATION_POLICY)
            .unwrap();
    }

    /// Ticks `range` (seconds after the base).
    async fn ticks(&self, range: std::ops::Range<i64>) {
        for i in range {
            tick(&self.ctl, self.base, i).await;
        }
    }

    /// A restart: the controller stops (its members run on), `while_down`
    /// changes the engine, then a new controller over the same store and
    /// engine restores; the ticks count from 0 again.
    async fn restart(self, while_down: impl FnOnce(&Fake)) -> Harness {
        let Harness {
            dir,
            fake,
            offset,
            ctl,
            ..
        } = self;
        ctl.shutdown();
        // The store closes with the last handle of the old controller.
        drop(ctl);
        tokio::time::sleep(Duration::from_millis(50)).await;
        while_down(&fake);
        let h = Harness::over(dir, fake, offset);
        h.ctl.restore().await.unwrap();
        h
    }

    fn runtime(&self) -> ApplicationView {
        self.ctl.runtime(samples::APPLICATION).unwrap()
    }
}

/// Removes the containers `which` picks (they vanished behind our back).
fn remove_containers(fake: &Fake, which: impl Fn(&crate::fake::FakeContainer) -> bool) {
    fake.state().containers.retain(|_, c| !which(c));
}

/// Marks the containers `which` picks as exited.
fn exit_containers(fake: &Fake, which: impl Fn(&crate::fake::FakeContainer) -> bool) {
    for c in fake.state().containers.values_mut() {
        if which(c) {
            c.running = false;
        }
    }
}

/// The events received so far.
fn drain(events: &mut broadcast::Receiver<Event>) -> Vec<EventKind> {
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e.kind);
    }
    seen
}

/// The samples with each file's JSON changed by `edit(file, json)`, and
/// `extra` definitions.
fn samples_with(
    edit: impl Fn(&str, &mut serde_json::Value),
    extra: &[(Kind, serde_json::Value)],
) -> Vec<Change> {
    let edited = samples::FILES.iter().map(|(kind, file, json)| {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        edit(file, &mut v);
        (*kind, v)
    });
    // A batch is checked as a whole: the order does not matter.
    edited
        .chain(extra.iter().cloned())
        .map(|(k, v)| Change::add(strato_paas_model::parse(k, v.to_string().as_bytes()).unwrap()))
        .collect()
}

/// Gives the samples' one host room for many members (8 cpus, 16 GiB).
fn big_host(file: &str, v: &mut serde_json::Value) {
    if file.ends_with("local-cluster.json") {
        v["kubernetesHosts"][0]["property"] = serde_json::json!([
            { "name": "cpu", "value": "8" },
            { "name": "memory", "value": "16Gi" }
        ]);
    }
}

fn statuses(ctl: &Controller<Fake>, cluster: &str) -> Vec<MemberStatus> {
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    rt.clusters
        .iter()
        .filter(|c| c.cluster_id == cluster)
        .flat_map(|c| c.members.iter().map(|m| m.status))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn deploys_in_startup_order_and_members_become_active() {
    let h = Harness::deployed(samples::changes().unwrap());
    let (ctl, fake, base) = (&h.ctl, &h.fake, h.base);
    tick(ctl, base, 0).await;
    // Only the first stage (mysql) is created; php waits for it.
    let created: Vec<String> = fake.state().created.iter().map(|c| c.1.clone()).collect();
    assert_eq!(created, vec![MYSQL.to_owned()]);
    tick(ctl, base, 1).await;
    assert_eq!(statuses(ctl, MYSQL), vec![MemberStatus::Active]);
    tick(ctl, base, 2).await;
    tick(ctl, base, 3).await;
    assert_eq!(statuses(ctl, PHP), vec![MemberStatus::Active]);
    let created: Vec<String> = fake.state().created.iter().map(|c| c.1.clone()).collect();
    assert_eq!(created, vec![MYSQL.to_owned(), PHP.to_owned()]);
    // The container as the cartridge says: image, labels, ports, limits.
    let php = fake.running_in(PHP).remove(0).spec;
    assert_eq!(php.image, "strato/sample-http:1");
    assert_eq!(php.labels[LABEL_APPLICATION], samples::APPLICATION);
    assert!(php.env.contains(&"PORT=80".to_owned()), "{:?}", php.env);
    assert_eq!(php.memory_bytes, Some(128 << 20));
    assert_eq!(php.cpu_millis, Some(500));
    assert_eq!(
        fake.running_in(PHP)[0].cpu_limit,
        Some(500),
        "set once started"
    );
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    assert_eq!(rt.status, DeploymentStatus::Active);
    // The member is in its pool.
    let lb = &rt.clusters.iter().find(|c| c.cluster_id == PHP).unwrap();
    assert_eq!(lb.load_balancer.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_member_whose_container_exits_is_replaced() {
    let h = Harness::deployed(samples::changes().unwrap());
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..4).await;
    let old = fake.running_in(PHP).remove(0);
    exit_containers(fake, |c| c.spec.labels[LABEL_CLUSTER] == PHP);
    h.ticks(4..7).await;
    let now = fake.running_in(PHP);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].spec.name, old.spec.name);
    assert_eq!(statuses(ctl, PHP), vec![MemberStatus::Active]);
    // The exited container was removed, not left behind.
    assert_eq!(fake.state().containers.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn memory_pressure_scales_out_to_the_rule_across_partitions_within_host_capacity() {
    let fake = Fake::default();
    // A steady 90 % (no gradient: the prediction is 90) against a
    // threshold of 80 with min 1, max 4:
    // ceil(1 + (90 − 80) / ((100 − 80) / (4 − 1))) = ceil(2.5) = 3.
    fake.state().memory_percent.insert(PHP.into(), 90);
    let h = Harness::with_fake(samples::changes().unwrap(), fake);
    h.deploy();
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..12).await;
    // Level 2: the sample's one host declares 2 cpus; mysql takes 1000m
    // and each php 500m, so the third php member waits, Pending.
    let mut st = statuses(ctl, PHP);
    st.sort();
    assert_eq!(
        st,
        vec![
            MemberStatus::Pending,
            MemberStatus::Active,
            MemberStatus::Active
        ]
    );
    let php = fake.running_in(PHP);
    assert_eq!(php.len(), 2);
    let waiting = ctl.runtime(samples::APPLICATION).unwrap().clusters[1]
        .members
        .iter()
        .find(|m| m.status == MemberStatus::Pending)
        .map(|m| m.member_id.clone())
        .unwrap();
    let parts: BTreeSet<String> = php
        .iter()
        .map(|c| c.spec.labels[LABEL_PARTITION].clone())
        .collect();
    assert_eq!(
        parts.len(),
        2,
        "round-robin over both partitions: {parts:?}"
    );
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    let c = rt.clusters.iter().find(|c| c.cluster_id == PHP).unwrap();
    assert_eq!(
        c.last_evaluation
            .as_ref()
            .unwrap()
            .figures
            .required_by_memory_consumption,
        Some(3)
    );
    // A php container exits: its room goes to the Pending member.
    let gone = php[0].spec.name.clone();
    exit_containers(fake, |c| c.spec.name == gone);
    h.ticks(12..16).await;
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    let now = &rt
        .clusters
        .iter()
        .find(|c| c.cluster_id == PHP)
        .unwrap()
        .members;
    let m = now.iter().find(|m| m.member_id == waiting).unwrap();
    assert_eq!(m.status, MemberStatus::Active, "{now:?}");
    assert_eq!(fake.running_in(PHP).len(), 2);
}

/// A host provider for tests: gives the hosts queued in it, one per
/// request, and keeps the requests.
#[derive(Default)]
struct Hosts {
    give: Mutex<Vec<Result<Option<KubernetesHost>, String>>>,
    asked: Mutex<Vec<HostRequest>>,
}

impl HostProvider for Hosts {
    fn name(&self) -> &str {
        "test"
    }

    fn provide(
        &self,
        req: HostRequest,
    ) -> futures::future::BoxFuture<'static, Result<Option<KubernetesHost>, String>> {
        lock(&self.asked).push(req);
        let mut give = lock(&self.give);
        let answer = if give.is_empty() {
            Ok(None)
        } else {
            give.remove(0)
        };
        Box::pin(async move { answer })
    }
}

fn two_cpu_host(id: &str) -> KubernetesHost {
    serde_json::from_value(serde_json::json!({
        "hostId": id, "privateIPAddress": "192.0.2.20",
        "property": [{"name": "cpu", "value": "2"}, {"name": "memory", "value": "4Gi"}]
    }))
    .unwrap()
}

/// The sample deployed under memory pressure (its php cluster wants 3
/// members, the one declared host holds 2) over `hosts`.
fn short_of_room(hosts: Arc<Hosts>) -> Harness {
    let fake = Fake::default();
    fake.state().memory_percent.insert(PHP.into(), 90);
    let h = Harness::with_hosts(samples::changes().unwrap(), fake, hosts);
    h.deploy();
    h
}

#[tokio::test(start_paused = true)]
async fn pending_members_get_a_host_from_the_provider() {
    let hosts = Arc::new(Hosts::default());
    lock(&hosts.give).push(Ok(Some(two_cpu_host("vm-1"))));
    let h = short_of_room(Arc::clone(&hosts));
    let mut events = h.ctl.subscribe();
    h.ticks(0..14).await;
    // Asked once, for the sample's cluster, with what the member needs.
    let asked = lock(&hosts.asked).clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].kubernetes_cluster_id, "local-cluster");
    assert_eq!(asked[0].pending_members, 1);
    assert_eq!(asked[0].cpu_millis, Some(500));
    assert_eq!(
        asked[0]
            .hosts
            .iter()
            .map(|h| h.host_id.as_str())
            .collect::<Vec<_>>(),
        ["local"]
    );
    // The host is declared now (durably), and the member runs on it.
    let k = &h.ctl.catalog().kubernetes_clusters["local-cluster"];
    assert_eq!(k.kubernetes_hosts.len(), 2);
    assert_eq!(k.kubernetes_hosts[1].host_id, "vm-1");
    assert_eq!(statuses(&h.ctl, PHP), vec![MemberStatus::Active; 3]);
    assert_eq!(h.fake.running_in(PHP).len(), 3);
    assert!(drain(&mut events).iter().any(|e| matches!(
        e,
        EventKind::HostAdded { host_id, cpu_millis: Some(2000), .. } if host_id == "vm-1"
    )));
    // A restart keeps the host: the three members stay Active.
    let h = h.restart(|_| {}).await;
    h.ticks(0..3).await;
    assert_eq!(statuses(&h.ctl, PHP), vec![MemberStatus::Active; 3]);
}

#[tokio::test(start_paused = true)]
async fn without_a_host_members_stay_pending_and_the_provider_is_asked_again_later() {
    let hosts = Arc::new(Hosts::default());
    // First no host, then one too small for a 500m member, then a failure.
    let mut tiny = two_cpu_host("tiny");
    tiny.property[0].value = "100m".into();
    lock(&hosts.give).extend([Ok(None), Ok(Some(tiny)), Err("quota exceeded".into())]);
    let h = short_of_room(Arc::clone(&hosts));
    let mut events = h.ctl.subscribe();
    h.ticks(0..14).await;
    assert_eq!(
        lock(&hosts.asked).len(),
        1,
        "no new request before host_retry"
    );
    let mut reasons = Vec::new();
    for _ in 0..2 {
        tokio::time::advance(Config::default().host_retry).await;
        h.ticks(14..15).await;
    }
    assert_eq!(lock(&hosts.asked).len(), 3);
    for e in drain(&mut events) {
        if let EventKind::HostUnavailable { reason, .. } = e {
            reasons.push(reason);
        }
    }
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("has no host for cluster local-cluster"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("too small"), "{}", reasons[1]);
    assert_eq!(reasons[2], "quota exceeded");
    // Nothing half-done: the small host was not declared, the member waits.
    assert_eq!(
        h.ctl.catalog().kubernetes_clusters["local-cluster"]
            .kubernetes_hosts
            .len(),
        1
    );
    let mut st = statuses(&h.ctl, PHP);
    st.sort();
    assert_eq!(
        st,
        [
            MemberStatus::Pending,
            MemberStatus::Active,
            MemberStatus::Active
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn undeploy_goes_in_reverse_startup_order_and_leaves_nothing() {
    let h = Harness::deployed(samples::changes().unwrap());
    let (ctl, fake, offset) = (&h.ctl, &h.fake, h.offset);
    h.ticks(0..4).await;
    let mut events = ctl.subscribe();
    ctl.undeploy(samples::APPLICATION).unwrap();
    h.ticks(4..10).await;
    assert!(fake.state().containers.is_empty());
    assert_eq!(fake.state().removed, vec![PHP.to_owned(), MYSQL.to_owned()]);
    assert!(!ctl.is_deployed(samples::APPLICATION));
    // The listener is closed: the port can be bound again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(std::net::TcpListener::bind(("127.0.0.1", (8280 + offset) as u16)).is_ok());
    let seen = drain(&mut events);
    assert!(seen.contains(&EventKind::ApplicationUndeployed), "{seen:?}");
    // Undeployed, the application's definitions can be removed again.
    ctl.apply(&[Change::Remove(
        Kind::Application,
        samples::APPLICATION.into(),
    )])
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_adopts_running_members_and_replaces_missing_ones() {
    let h = Harness::deployed(samples::changes().unwrap());
    h.ticks(0..4).await;
    let php_before = h.fake.running_in(PHP).remove(0).spec.name;
    let creates_before = h.fake.state().created.len();
    // While it was down, the mysql container vanished.
    let h = h
        .restart(|fake| remove_containers(fake, |c| c.spec.labels[LABEL_CLUSTER] == MYSQL))
        .await;
    let (ctl, fake) = (&h.ctl, &h.fake);
    assert_eq!(statuses(ctl, PHP), vec![MemberStatus::Active]);
    h.ticks(0..3).await;
    assert_eq!(fake.running_in(PHP).remove(0).spec.name, php_before);
    assert_eq!(fake.running_in(MYSQL).len(), 1);
    assert_eq!(fake.state().created.len(), creates_before + 1);
    assert_eq!(statuses(ctl, MYSQL), vec![MemberStatus::Active]);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_cannot_be_created_is_retried_with_backoff() {
    let h = Harness::deployed(samples::changes().unwrap());
    let (ctl, fake) = (&h.ctl, &h.fake);
    fake.state().fail_create = true;
    let mut events = ctl.subscribe();
    // Ten ticks of a second each: 1 + 2 + 4 s of backoff leave room for
    // a few attempts, not ten.
    for _ in 0..10 {
        ctl.reconcile_once(now_ms()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::advance(Duration::from_millis(950)).await;
    }
    let calls = fake.state().create_calls;
    assert!((2..=4).contains(&calls), "{calls} create attempts");
    let reasons: Vec<String> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::MemberStatus { reason, .. } => reason,
            _ => None,
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("No such image")),
        "{reasons:?}"
    );
    // Once the image is there, the member comes up.
    fake.state().fail_create = false;
    for _ in 0..70 {
        ctl.reconcile_once(now_ms()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::advance(Duration::from_millis(950)).await;
        if statuses(ctl, MYSQL) == vec![MemberStatus::Active] {
            return;
        }
    }
    panic!("mysql never became Active: {:?}", statuses(ctl, MYSQL));
}

/// An application `many-app` of `n` members of one small cartridge
/// (`tiny`, listening on proxyPort 9280 + the offset), on the samples'
/// policies and one-host partition.
fn many_members(n: u32) -> Vec<Change> {
    let cartridge = r#"{ "type": "tiny", "provider": "strato", "category": "framework",
        "host": "strato.local", "displayName": "tiny", "description": "small",
        "version": "1", "multiTenant": "false",
        "portMapping": [ { "name": "http", "protocol": "http", "port": "80", "proxyPort": "9280" } ],
        "iaasProvider": [ { "type": "strato", "imageId": "strato/sample-http:1", "property": [] } ],
        "property": [ { "name": "cpu", "value": "10m" }, { "name": "memory", "value": "16Mi" } ] }"#;
    let deployment = format!(
        r#"{{ "id": "deployment-policy-many", "networkPartitions": [ {{
            "id": "network-partition-local", "partitionAlgo": "one-after-another",
            "partitions": [ {{ "id": "partition-a", "partitionMax": {n} }} ] }} ] }}"#
    );
    let application = format!(
        r#"{{ "applicationId": "many-app", "alias": "many-app", "multiTenant": false,
            "components": {{ "cartridges": [ {{ "type": "tiny",
                "cartridgeMin": {n}, "cartridgeMax": {n},
                "subscribableInfo": {{ "alias": "tiny",
                    "autoscalingPolicy": "autoscaling-policy-web",
                    "deploymentPolicy": "deployment-policy-many" }} }} ] }} }}"#
    );
    [
        (Kind::Cartridge, cartridge.to_owned()),
        (Kind::DeploymentPolicy, deployment),
        (Kind::Application, application),
    ]
    .into_iter()
    .map(|(k, j)| Change::add(strato_paas_model::parse(k, j.as_bytes()).unwrap()))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_large_deployment_launches_through_bounded_slots_while_the_runtime_answers() {
    let h = Harness::new();
    let (ctl, fake) = (&h.ctl, &h.fake);
    fake.state().create_delay = Duration::from_millis(200);
    let slots = ctl.inner.config.engine_parallel;
    let n = 5 * slots;
    ctl.apply(&many_members(u32::try_from(n).unwrap())).unwrap();
    ctl.deploy("many-app", samples::APPLICATION_POLICY).unwrap();
    ctl.reconcile_once(now_ms()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Every member is decided and recorded at once; the engine gets the
    // creates a slot at a time, and the runtime answers meanwhile.
    let rt = ctl.runtime("many-app").unwrap();
    let members = &rt.clusters[0].members;
    assert_eq!(members.len(), n);
    assert!(members.iter().all(|m| m.status == MemberStatus::Created));
    assert_eq!(fake.state().creating as usize, slots);
    assert_eq!(lock(&ctl.inner.store).members().unwrap().len(), n);
    let mut seen_partly_active = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st: Vec<MemberStatus> = ctl.runtime("many-app").unwrap().clusters[0]
            .members
            .iter()
            .map(|m| m.status)
            .collect();
        let active = st.iter().filter(|s| **s == MemberStatus::Active).count();
        seen_partly_active |= active > 0 && active < n;
        if active == n {
            break;
        }
        if i % 10 == 9 {
            ctl.reconcile_once(now_ms()).await;
        }
    }
    ctl.reconcile_once(now_ms()).await;
    assert!(
        seen_partly_active,
        "members become Active as their slots finish"
    );
    let rt = ctl.runtime("many-app").unwrap();
    assert_eq!(rt.status, DeploymentStatus::Active);
    assert!(rt.clusters[0]
        .members
        .iter()
        .all(|m| m.status == MemberStatus::Active));
    let s = fake.state();
    assert_eq!(s.most_creating as usize, slots, "never more than the slots");
    assert_eq!(s.created.len(), n, "one container per member");
    drop(s);
    // The records' later changes were deferred, then flushed by the tick.
    assert!(!lock(&ctl.inner.store).has_deferred());
    let recs = lock(&ctl.inner.store).members().unwrap();
    assert!(recs
        .values()
        .all(|r| r.status == MemberStatus::Active && r.container_id.is_some()));
}

#[tokio::test(start_paused = true)]
async fn a_running_member_whose_record_lagged_behind_is_adopted_and_probed() {
    let h = Harness::deployed(samples::changes().unwrap());
    h.ticks(0..4).await;
    // A crash before the deferred changes reached the disk: the record
    // still says Created, though the container runs.
    {
        let store = lock(&h.ctl.inner.store);
        let mut recs = store.members().unwrap();
        for r in recs.values_mut() {
            r.status = MemberStatus::Created;
        }
        let recs: Vec<MemberRecord> = recs.into_values().collect();
        store.write_members(&recs, &[]).unwrap();
    }
    let before: Vec<String> = h.fake.state().containers.keys().cloned().collect();
    let h = h.restart(|_| {}).await;
    h.ticks(0..3).await;
    assert_eq!(statuses(&h.ctl, MYSQL), vec![MemberStatus::Active]);
    assert_eq!(statuses(&h.ctl, PHP), vec![MemberStatus::Active]);
    let after: Vec<String> = h.fake.state().containers.keys().cloned().collect();
    assert_eq!(after, before, "adopted, not replaced");
}

/// The samples with the group at `groupMinInstances` 2, `groupMaxInstances`
/// 3 and group scaling on, php at one member per instance, and a host
/// large enough for three instances.
fn group_scaling_samples() -> Vec<Change> {
    samples_with(
        |file, v| {
            if file.ends_with("php-mysql-app.json") {
                let g = &mut v["components"]["groups"][0];
                g["groupMinInstances"] = 2.into();
                g["groupMaxInstances"] = 3.into();
                g["groupScalingEnabled"] = true.into();
                g["cartridges"][1]["cartridgeMax"] = 1.into();
            }
            big_host(file, v);
        },
        &[],
    )
}

/// Label `label` of each running container of a cluster, sorted.
fn labels_of(fake: &Fake, cluster: &str, label: &str) -> Vec<String> {
    let mut v: Vec<String> = fake
        .running_in(cluster)
        .iter()
        .map(|c| c.spec.labels[label].clone())
        .collect();
    v.sort();
    v
}

/// Group instance of each running container of a cluster, sorted.
fn instances_of(fake: &Fake, cluster: &str) -> Vec<String> {
    labels_of(fake, cluster, LABEL_INSTANCE)
}

/// The group decisions among events: (group, parent instance, action,
/// instance added or removed).
fn group_decisions(events: &[EventKind]) -> Vec<(String, String, GroupAction, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::GroupScaling {
                group,
                parent_instance_id,
                action,
                instance_id,
                ..
            } => Some((
                group.clone(),
                parent_instance_id.clone(),
                *action,
                instance_id.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

fn group_instances(ctl: &Controller<Fake>) -> Vec<(String, String)> {
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    rt.groups
        .iter()
        .flat_map(|g| g.instances.iter())
        .map(|i| (i.instance_id.clone(), i.status.clone()))
        .collect()
}

const G1: &str = "my-php-mysql-1";
const G2: &str = "my-php-mysql-2";
const G3: &str = "my-php-mysql-3";

#[tokio::test(start_paused = true)]
async fn group_min_instances_deploy_copies_of_the_groups_clusters() {
    let h = Harness::deployed(group_scaling_samples());
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..1).await;
    // mysql of both instances first; php of each waits for its mysql.
    assert_eq!(instances_of(fake, MYSQL), [G1, G2]);
    assert!(fake.running_in(PHP).is_empty());
    h.ticks(1..5).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2]);
    assert_eq!(instances_of(fake, MYSQL), [G1, G2]);
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    assert_eq!(rt.status, DeploymentStatus::Active);
    assert_eq!(
        group_instances(ctl),
        [(G1.into(), "Active".into()), (G2.into(), "Active".into())]
    );
    let php = rt.clusters.iter().find(|c| c.cluster_id == PHP).unwrap();
    let mut member_instances: Vec<&str> =
        php.members.iter().map(|m| m.instance_id.as_str()).collect();
    member_instances.sort();
    assert_eq!(member_instances, [G1, G2]);
    assert_eq!(php.instances.len(), 2);
    // Both members of the cluster are in its one load-balancer pool.
    assert!(php.members.iter().all(|m| m.status == MemberStatus::Active));
    let c = fake.running_in(PHP).remove(0);
    let inst = &c.spec.labels[LABEL_INSTANCE];
    assert!(c.spec.env.contains(&format!("INSTANCE_ID={inst}")));
    // The records carry the instance.
    let recs = lock(&ctl.inner.store).members().unwrap();
    assert_eq!(recs.len(), 4);
    assert!(recs
        .values()
        .all(|r| r.instance_id == G1 || r.instance_id == G2));
    // Undeploy removes every instance's members.
    ctl.undeploy(samples::APPLICATION).unwrap();
    h.ticks(5..12).await;
    assert!(!ctl.is_deployed(samples::APPLICATION));
    assert!(fake.state().containers.is_empty());
    assert_eq!(lock(&ctl.inner.store).member_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cluster_at_its_max_adds_a_group_instance_and_load_gone_removes_it() {
    let h = Harness::deployed(group_scaling_samples());
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..5).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2]);
    // php busy at 100 % of its cpu against a loadAverage threshold of 70:
    // ceil(1 · 100 / 70) = 2 members wanted, cartridgeMax is 1, so each
    // php instance is over its maximum and the group adds an instance
    // (up to groupMaxInstances 3, one at a time).
    fake.state().load_percent.insert(PHP.into(), 100);
    let mut events = ctl.subscribe();
    h.ticks(5..16).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2, G3]);
    assert_eq!(instances_of(fake, MYSQL), [G1, G2, G3]);
    let rt = ctl.runtime(samples::APPLICATION).unwrap();
    let php = rt.clusters.iter().find(|c| c.cluster_id == PHP).unwrap();
    let eval = php.instances[0].last_evaluation.as_ref().unwrap();
    assert_eq!(eval.figures.required_by_load_average, Some(2));
    assert_eq!(eval.action, Action::AtMax { required: 2 });
    let seen = group_decisions(&drain(&mut events));
    let added: Vec<&str> = seen
        .iter()
        .filter(|d| d.2 == GroupAction::AddInstance)
        .map(|d| d.3.as_str())
        .collect();
    let escalated = seen.iter().any(|d| d.2 == GroupAction::Escalate);
    assert_eq!(added, [G3], "one instance added");
    assert!(escalated, "at groupMaxInstances the notice goes up");
    // Load gone: php would go below its minimum in every instance, and
    // so would mysql; after three deferred decisions and the 30 s
    // cooldown from the add, the newest instance goes, and only it.
    fake.state().load_percent.insert(PHP.into(), 0);
    h.ticks(16..30).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2, G3], "cooling down");
    h.ticks(30..50).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2]);
    assert_eq!(instances_of(fake, MYSQL), [G1, G2]);
    assert_eq!(
        group_instances(ctl),
        [(G1.into(), "Active".into()), (G2.into(), "Active".into())]
    );
    // groupMinInstances holds: no fewer than 2 however long it stays idle.
    h.ticks(50..120).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2]);
    let recs = lock(&ctl.inner.store).members().unwrap();
    assert!(recs.values().all(|r| r.instance_id != G3));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_reconciles_group_instances() {
    let h = Harness::deployed(group_scaling_samples());
    h.ticks(0..5).await;
    h.fake.state().load_percent.insert(PHP.into(), 100);
    h.ticks(5..16).await;
    assert_eq!(instances_of(&h.fake, PHP), [G1, G2, G3]);
    let creates_before = h.fake.state().created.len();
    // While it was down, instance 2's php container vanished.
    let h = h
        .restart(|fake| {
            remove_containers(fake, |c| {
                c.spec.labels[LABEL_CLUSTER] == PHP && c.spec.labels[LABEL_INSTANCE] == G2
            })
        })
        .await;
    let (ctl, fake) = (&h.ctl, &h.fake);
    // The three instances come back from the members' records.
    let ids: Vec<String> = group_instances(ctl).into_iter().map(|i| i.0).collect();
    assert_eq!(ids, [G1, G2, G3]);
    h.ticks(0..3).await;
    // The missing php member is replaced in its own instance, nothing else.
    assert_eq!(instances_of(fake, PHP), [G1, G2, G3]);
    assert_eq!(instances_of(fake, MYSQL), [G1, G2, G3]);
    assert_eq!(fake.state().created.len(), creates_before + 1);
    // The group monitor of the restarted controller still removes the
    // extra instance once the load is gone.
    fake.state().load_percent.insert(PHP.into(), 0);
    h.ticks(3..60).await;
    assert_eq!(instances_of(fake, PHP), [G1, G2]);
}

/// The sample's plan reshaped into nested groups: mysql in group `s`
/// (2 instances), php in group `i` (2 instances per instance of `s`).
fn nested_app() -> AppRt {
    let catalog = {
        let mut c = Catalog::new();
        c = c.apply(&samples::changes().unwrap()).unwrap();
        c
    };
    let mut plan = plan::plan(&catalog, samples::APPLICATION, samples::APPLICATION_POLICY).unwrap();
    let g = |alias: &str, parent: Option<&str>, clusters: &[&str]| GroupPlan {
        alias: alias.into(),
        name: alias.into(),
        parent: parent.map(Into::into),
        min_instances: 2,
        max_instances: 3,
        group_scaling_enabled: true,
        has_scaling_dependents: false,
        termination_behaviour: plan.groups[0].termination_behaviour,
        clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
    };
    plan.groups = vec![g("i", Some("s"), &[PHP]), g("s", None, &[MYSQL, PHP])];
    let policy = catalog
        .autoscaling_policies
        .values()
        .next()
        .unwrap()
        .clone();
    let clusters = plan
        .clusters
        .iter_mut()
        .map(|c| {
            c.groups = if c.cluster_id == PHP {
                vec!["s".into(), "i".into()]
            } else {
                vec!["s".into()]
            };
            (
                c.cluster_id.clone(),
                ClusterRt {
                    plan: c.clone(),
                    policy: policy.clone(),
                    instances: BTreeMap::new(),
                    listeners: Vec::new(),
                    failures: 0,
                    backoff_until: None,
                },
            )
        })
        .collect();
    AppRt::new(plan, clusters, ScalingConfig::default())
}

fn keys(app: &AppRt, cluster: &str) -> Vec<String> {
    app.clusters[cluster].instances.keys().cloned().collect()
}

#[test]
fn nested_group_instances_multiply_and_go_with_their_parent() {
    let mut app = nested_app();
    app.ensure_instances();
    assert_eq!(keys(&app, MYSQL), ["s-1", "s-2"]);
    assert_eq!(
        keys(&app, PHP),
        ["s-1/i-1", "s-1/i-2", "s-2/i-3", "s-2/i-4"]
    );
    // A third instance of `s` brings its own two of `i`.
    app.add_group_instance("s", "");
    app.ensure_instances();
    assert_eq!(keys(&app, MYSQL), ["s-1", "s-2", "s-3"]);
    assert_eq!(
        keys(&app, PHP),
        ["s-1/i-1", "s-1/i-2", "s-2/i-3", "s-2/i-4", "s-3/i-5", "s-3/i-6"]
    );
    // Removing it removes what is inside it, and nothing that only shares
    // a prefix of its name.
    app.group_scaling.insert(
        ("i".into(), "s-3".into()),
        GroupScaling::new(ScalingConfig::default()),
    );
    app.group_scaling.insert(
        ("i".into(), "s-1".into()),
        GroupScaling::new(ScalingConfig::default()),
    );
    let mut gone = app.remove_group_instance("s-3");
    let monitors: Vec<&(String, String)> = app.group_scaling.keys().collect();
    assert_eq!(monitors, [&("i".to_owned(), "s-1".to_owned())]);
    gone.sort();
    assert_eq!(gone, ["s-3", "s-3/i-5", "s-3/i-6"]);
    assert_eq!(keys(&app, PHP).len(), 4);
    assert!(within("s-3/i-5", "s-3"));
    assert!(!within("s-30/i-5", "s-3"));
    assert!(!within("s-3", "s-3/i-5"));
}

#[test]
fn instance_ids_from_records_are_checked_against_the_plan() {
    let mut app = nested_app();
    assert!(app.adopt_instance(PHP, "s-2/i-7"));
    assert!(app.adopt_instance(MYSQL, "s-2"));
    // Wrong nesting, unknown group, a group that is not the cluster's
    // innermost, no number, and no instance for a grouped cluster.
    assert!(!app.adopt_instance(PHP, "i-1/s-1"));
    assert!(!app.adopt_instance(PHP, "s-1/x-1"));
    assert!(!app.adopt_instance(PHP, "s-1"));
    assert!(!app.adopt_instance(MYSQL, "s-x"));
    assert!(!app.adopt_instance(MYSQL, ""));
    app.ensure_instances();
    // s-2 adopted, one more s to reach 2; i to 2 in each s; new numbers
    // follow the adopted ones.
    assert_eq!(keys(&app, MYSQL), ["s-2", "s-3"]);
    assert_eq!(
        keys(&app, PHP),
        ["s-2/i-7", "s-2/i-8", "s-3/i-10", "s-3/i-9"]
    );
}

/// The samples reshaped into nested groups: group `my-php-mysql` (the
/// outer one: groupMinInstances 1, groupMaxInstances 2, group scaling
/// `outer_scaling`) holds mysql and group `my-php-g` (the inner one:
/// 1 to 2 instances, group scaling on), which holds php at one member;
/// php starts after mysql in each outer instance.
fn nested_samples(outer_scaling: bool) -> Vec<Change> {
    samples_with(
        |file, v| {
            if file.ends_with("php-mysql-group.json") {
                *v = serde_json::json!({
                    "name": "php-mysql-group",
                    "cartridges": ["mysql"],
                    "groups": [{
                        "name": "php-group",
                        "cartridges": ["php"],
                        "groupScalingEnabled": true
                    }],
                    "dependencies": {
                        "startupOrders": [{"aliases": ["cartridge.my-mysql", "group.my-php-g"]}],
                        "terminationBehaviour": "terminate-all"
                    },
                    "groupScalingEnabled": outer_scaling
                });
            }
            if file.ends_with("php-mysql-app.json") {
                let g = &mut v["components"]["groups"][0];
                g["groupMaxInstances"] = 2.into();
                g["groupScalingEnabled"] = outer_scaling.into();
                let mut php = g["cartridges"][1].take();
                php["cartridgeMax"] = 1.into();
                g["cartridges"] = serde_json::json!([g["cartridges"][0].take()]);
                g["groups"] = serde_json::json!([{
                    "name": "php-group",
                    "alias": "my-php-g",
                    "groupMinInstances": 1,
                    "groupMaxInstances": 2,
                    "groupScalingEnabled": true,
                    "cartridges": [php]
                }]);
            }
            big_host(file, v);
        },
        &[],
    )
}

const O1: &str = "my-php-mysql-1";
const O2: &str = "my-php-mysql-2";
const O1I1: &str = "my-php-mysql-1/my-php-g-1";
const O1I2: &str = "my-php-mysql-1/my-php-g-2";
const O2I3: &str = "my-php-mysql-2/my-php-g-3";
const O2I4: &str = "my-php-mysql-2/my-php-g-4";

/// Ticks `range` and notes the first tick at which a container of each
/// (cluster, instance) ran.
async fn ticks_noting_starts(
    h: &Harness,
    range: std::ops::Range<i64>,
    seen: &mut BTreeMap<(String, String), i64>,
) {
    for i in range {
        tick(&h.ctl, h.base, i).await;
        for c in [MYSQL, PHP] {
            for inst in instances_of(&h.fake, c) {
                seen.entry((c.to_owned(), inst)).or_insert(i);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn nested_groups_scale_the_inner_group_in_its_outer_instance_then_the_outer_group() {
    let h = Harness::deployed(nested_samples(true));
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..6).await;
    assert_eq!(instances_of(fake, MYSQL), [O1]);
    assert_eq!(instances_of(fake, PHP), [O1I1]);
    // php busy: ceil(100 / 70) = 2 members wanted in each php instance,
    // one allowed. The inner group adds an instance in its outer instance;
    // at its maximum there it passes the notice to the outer group, which
    // adds an outer instance (mysql, and the inner group at its minimum);
    // that one's inner group grows in turn; then the outer group is at
    // its maximum and the application (one network partition) too.
    fake.state().load_percent.insert(PHP.into(), 100);
    let mut events = ctl.subscribe();
    let mut started = BTreeMap::new();
    ticks_noting_starts(&h, 6..40, &mut started).await;
    assert_eq!(instances_of(fake, MYSQL), [O1, O2]);
    assert_eq!(instances_of(fake, PHP), [O1I1, O1I2, O2I3, O2I4]);
    let seen = drain(&mut events);
    let added: Vec<(String, String, String)> = group_decisions(&seen)
        .into_iter()
        .filter(|d| d.2 == GroupAction::AddInstance)
        .map(|d| (d.0, d.1, d.3))
        .collect();
    let add = |g: &str, parent: &str, id: &str| (g.to_owned(), parent.to_owned(), id.to_owned());
    assert_eq!(
        added,
        [
            add("my-php-g", O1, O1I2),
            add("my-php-mysql", "", O2),
            add("my-php-g", O2, O2I4),
        ]
    );
    assert!(group_decisions(&seen)
        .iter()
        .any(|d| d.0 == "my-php-mysql" && d.2 == GroupAction::Escalate));
    assert!(
        seen.iter().any(|e| matches!(
            e,
            EventKind::Bursting {
                action: GroupAction::Escalate,
                ..
            }
        )),
        "no network partition left to burst into"
    );
    // Startup order per instance: php of the new outer instance started
    // after its own mysql.
    let at = |c: &str, i: &str| started[&(c.to_owned(), i.to_owned())];
    assert!(at(MYSQL, O2) < at(PHP, O2I3), "{started:?}");
    // The runtime shows the nesting: parents, members' instances.
    let rt = h.runtime();
    let inner = rt.groups.iter().find(|g| g.alias == "my-php-g").unwrap();
    assert_eq!(inner.parent_alias.as_deref(), Some("my-php-mysql"));
    let parents: Vec<(&str, Option<&str>)> = inner
        .instances
        .iter()
        .map(|i| (i.instance_id.as_str(), i.parent_instance_id.as_deref()))
        .collect();
    assert_eq!(
        parents,
        [
            (O1I1, Some(O1)),
            (O1I2, Some(O1)),
            (O2I3, Some(O2)),
            (O2I4, Some(O2))
        ]
    );
    assert!(inner.instances.iter().all(|i| i.status == "Active"));
    let php = rt.clusters.iter().find(|c| c.cluster_id == PHP).unwrap();
    let mut member_insts: Vec<&str> = php.members.iter().map(|m| m.instance_id.as_str()).collect();
    member_insts.sort();
    assert_eq!(member_insts, [O1I1, O1I2, O2I3, O2I4]);
    // Load gone: each inner group gives its newest instance up, then the
    // outer group its newest instance (with what is inside it).
    fake.state().load_percent.insert(PHP.into(), 0);
    let mut events = ctl.subscribe();
    h.ticks(40..120).await;
    assert_eq!(instances_of(fake, MYSQL), [O1]);
    assert_eq!(instances_of(fake, PHP), [O1I1]);
    let removed: Vec<String> = group_decisions(&drain(&mut events))
        .into_iter()
        .filter(|d| d.2 == GroupAction::RemoveInstance)
        .map(|d| d.3)
        .collect();
    let outer_at = removed.iter().position(|r| r == O2).unwrap();
    let inner_at = removed.iter().position(|r| r == O2I4).unwrap();
    assert!(inner_at < outer_at, "{removed:?}");
    assert!(removed.iter().any(|r| r == O1I2), "{removed:?}");
    let recs = lock(&ctl.inner.store).members().unwrap();
    let mut left: Vec<&str> = recs.values().map(|r| r.instance_id.as_str()).collect();
    left.sort();
    assert_eq!(left, [O1, O1I1]);
}

#[tokio::test(start_paused = true)]
async fn an_inner_group_at_its_maximum_tells_an_outer_group_without_group_scaling() {
    let h = Harness::deployed(nested_samples(false));
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..6).await;
    fake.state().load_percent.insert(PHP.into(), 100);
    let mut events = ctl.subscribe();
    h.ticks(6..40).await;
    // The inner group grows within the one outer instance; the outer
    // group, without group scaling, passes the notice up.
    assert_eq!(instances_of(fake, MYSQL), [O1]);
    assert_eq!(instances_of(fake, PHP), [O1I1, O1I2]);
    let decisions = group_decisions(&drain(&mut events));
    let of = |g: &str| -> Vec<GroupAction> {
        let mut v: Vec<GroupAction> = decisions
            .iter()
            .filter(|d| d.0 == g && d.2 != GroupAction::Hold)
            .map(|d| d.2)
            .collect();
        v.dedup();
        v
    };
    assert_eq!(
        of("my-php-g"),
        [GroupAction::AddInstance, GroupAction::Escalate]
    );
    assert_eq!(of("my-php-mysql"), [GroupAction::Escalate]);
    fake.state().load_percent.insert(PHP.into(), 0);
    h.ticks(40..100).await;
    assert_eq!(instances_of(fake, PHP), [O1I1]);
    assert_eq!(instances_of(fake, MYSQL), [O1]);
}

const BURST_NP: &str = "network-partition-burst";
const BURST: &str = "@network-partition-burst";

/// The samples with a second network partition (on the same host) that
/// the application policy lists after the first (one-after-another) and
/// the deployment policy allows two members in; `edit` changes the
/// application further.
fn burst_samples(edit: impl Fn(&mut serde_json::Value)) -> Vec<Change> {
    two_network_partitions("one-after-another", edit)
}

/// [`burst_samples`] with the application policy's `algorithm`.
fn two_network_partitions(algorithm: &str, edit: impl Fn(&mut serde_json::Value)) -> Vec<Change> {
    two_network_partitions_on("local-cluster", algorithm, edit)
}

/// [`two_network_partitions`] with the burst partition on the hosts of
/// `cluster`: the samples' one (then with room for many members), or a
/// cluster of its own with one big host (then the samples' host keeps
/// its 2 cpus).
fn two_network_partitions_on(
    cluster: &str,
    algorithm: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> Vec<Change> {
    let np = serde_json::json!({
        "id": BURST_NP,
        "provider": "strato",
        "partitions": [{
            "id": "partition-c",
            "property": [{ "name": "cluster", "value": cluster }]
        }]
    });
    let mut extra = vec![(Kind::NetworkPartition, np)];
    let shared = cluster == "local-cluster";
    if !shared {
        let k = serde_json::json!({
            "clusterId": cluster,
            "kubernetesMaster": { "hostId": "far-master", "privateIPAddress": "192.0.2.30" },
            "kubernetesHosts": [{
                "hostId": "far", "privateIPAddress": "192.0.2.31",
                "property": [{ "name": "cpu", "value": "8" }, { "name": "memory", "value": "16Gi" }]
            }]
        });
        extra.insert(0, (Kind::KubernetesCluster, k));
    }
    samples_with(
        |file, v| {
            if file.ends_with("deployment-policy-local.json") {
                v["networkPartitions"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({
                        "id": BURST_NP,
                        "partitionAlgo": "one-after-another",
                        "partitions": [{ "id": "partition-c", "partitionMax": 2 }]
                    }));
            }
            if file.ends_with("application-policy-local.json") {
                v["networkPartitions"] = serde_json::json!(["network-partition-local", BURST_NP]);
                v["algorithm"] = algorithm.into();
            }
            if file.ends_with("php-mysql-app.json") {
                edit(v);
            }
            if shared {
                big_host(file, v);
            }
        },
        &extra,
    )
}

/// (instance id, network partition, burst) of each application instance.
fn app_instances(h: &Harness) -> Vec<(String, String, bool)> {
    h.runtime()
        .instances
        .iter()
        .map(|a| {
            (
                a.instance_id.clone(),
                a.network_partition_id.clone(),
                a.burst,
            )
        })
        .collect()
}

/// Network partition of each running container of a cluster, sorted.
fn partitions_of(fake: &Fake, cluster: &str) -> Vec<String> {
    labels_of(fake, cluster, LABEL_PARTITION)
}

#[tokio::test(start_paused = true)]
async fn a_group_at_its_maximum_bursts_into_the_next_network_partition_and_back() {
    // The group without group scaling, php at one member.
    let h = Harness::deployed(burst_samples(|v| {
        v["components"]["groups"][0]["cartridges"][1]["cartridgeMax"] = 1.into();
    }));
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..5).await;
    let local = |id: &str| (id.to_owned(), "network-partition-local".to_owned(), false);
    assert_eq!(app_instances(&h), [local("")]);
    assert_eq!(instances_of(fake, PHP), [G1]);
    // php over its maximum; the group cannot grow and tells the
    // application, which starts an instance of itself in the next network
    // partition: the group at its minimum there, mysql first, then php.
    fake.state().load_percent.insert(PHP.into(), 100);
    let mut events = ctl.subscribe();
    let mut started = BTreeMap::new();
    let burst_group = format!("{BURST}/my-php-mysql-2");
    for i in 5..20 {
        tick(ctl, h.base, i).await;
        for c in [MYSQL, PHP] {
            for inst in instances_of(fake, c) {
                started.entry((c, inst)).or_insert(i);
            }
        }
    }
    assert_eq!(
        app_instances(&h),
        [local(""), (BURST.into(), BURST_NP.into(), true)]
    );
    // (Sorted: `@` before letters.)
    assert_eq!(
        instances_of(fake, PHP),
        [burst_group.clone(), G1.to_owned()]
    );
    assert_eq!(
        instances_of(fake, MYSQL),
        [burst_group.clone(), G1.to_owned()]
    );
    assert!(
        started[&(MYSQL, burst_group.clone())] < started[&(PHP, burst_group.clone())],
        "{started:?}"
    );
    // Its members are placed in the burst network partition, and in the
    // cluster's one load-balancer pool.
    assert_eq!(
        partitions_of(fake, PHP),
        [
            "network-partition-burst/partition-c",
            "network-partition-local/partition-a"
        ]
    );
    let rt = h.runtime();
    let php = rt.clusters.iter().find(|c| c.cluster_id == PHP).unwrap();
    let nps: Vec<(&str, &str)> = php
        .instances
        .iter()
        .map(|i| (i.instance_id.as_str(), i.network_partition_id.as_str()))
        .collect();
    assert_eq!(
        nps,
        [
            (burst_group.as_str(), BURST_NP),
            (G1, "network-partition-local")
        ]
    );
    let g = &rt.groups[0].instances;
    assert_eq!(g[1].network_partition_id, BURST_NP);
    assert_eq!(g[1].parent_instance_id.as_deref(), Some(BURST));
    let bursts: Vec<(GroupAction, Option<String>, Option<String>)> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Bursting {
                action,
                instance_id,
                network_partition_id,
                ..
            } => Some((action, instance_id, network_partition_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        bursts.first(),
        Some(&(
            GroupAction::AddInstance,
            Some(BURST.to_owned()),
            Some(BURST_NP.to_owned())
        ))
    );
    // No third network partition: the application says so.
    assert_eq!(bursts.last().map(|b| b.0), Some(GroupAction::Escalate));

    // A restart finds the burst instance again from the members' records.
    let creates = fake.state().created.len();
    let h = h.restart(|_| {}).await;
    assert_eq!(
        app_instances(&h),
        [local(""), (BURST.into(), BURST_NP.into(), true)]
    );
    h.ticks(0..3).await;
    assert_eq!(
        h.fake.state().created.len(),
        creates,
        "adopted, not replaced"
    );

    // Load gone: after the deferrals and the cooldown the burst instance
    // goes with everything in it; the first one stays.
    h.fake.state().load_percent.insert(PHP.into(), 0);
    h.ticks(3..60).await;
    assert_eq!(app_instances(&h), [local("")]);
    assert_eq!(instances_of(&h.fake, PHP), [G1]);
    assert_eq!(instances_of(&h.fake, MYSQL), [G1]);
    let recs = lock(&h.ctl.inner.store).members().unwrap();
    assert!(recs.values().all(|r| r.network_partition != BURST_NP));
}

/// The sample application without its group: mysql, then php, at the
/// top; php's cartridgeMax `php_max` when given.
fn plain_clusters(v: &mut serde_json::Value, php_max: Option<u32>) {
    let mut g = v["components"]["groups"][0].take();
    if let Some(max) = php_max {
        g["cartridges"][1]["cartridgeMax"] = max.into();
    }
    g["cartridges"][1]["subscribableInfo"]["deploymentPolicy"] = "deployment-policy-local".into();
    g["cartridges"][0]["subscribableInfo"]["deploymentPolicy"] = "deployment-policy-local".into();
    v["components"] = serde_json::json!({
        "cartridges": g["cartridges"].take(),
        "dependencies": {
            "startupOrders": [{"aliases": ["cartridge.my-mysql", "cartridge.my-php"]}]
        }
    });
}

#[tokio::test(start_paused = true)]
async fn members_with_no_host_anywhere_make_the_application_burst() {
    // php wants 3 members (memory at 90 %, max 4), the samples' host
    // holds mysql and two; the provider has no host, so the waiting
    // member tells the application, which bursts into the partition on
    // other hosts.
    let fake = Fake::default();
    fake.state().memory_percent.insert(PHP.into(), 90);
    let hosts = Arc::new(Hosts::default());
    let h = Harness::with_hosts(
        two_network_partitions_on("far-cluster", "one-after-another", |v| {
            plain_clusters(v, None)
        }),
        fake,
        hosts.clone(),
    );
    h.deploy();
    let mut events = h.ctl.subscribe();
    h.ticks(0..20).await;
    assert!(!lock(&hosts.asked).is_empty());
    assert!(statuses(&h.ctl, PHP).contains(&MemberStatus::Pending));
    let seen = drain(&mut events);
    assert!(seen
        .iter()
        .any(|e| matches!(e, EventKind::HostUnavailable { .. })));
    assert!(
        seen.iter().any(|e| matches!(
            e,
            EventKind::Bursting { action: GroupAction::AddInstance, network_partition_id: Some(np), .. } if np == BURST_NP
        )),
        "{seen:?}"
    );
    assert_eq!(
        partitions_of(&h.fake, MYSQL),
        [
            "network-partition-burst/partition-c",
            "network-partition-local/partition-a"
        ]
    );
    assert!(instances_of(&h.fake, PHP).contains(&BURST.to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_plain_cluster_at_its_maximum_bursts_with_the_application() {
    // No group: mysql, then php (cartridgeMax 1), at the top.
    let h = Harness::deployed(burst_samples(|v| plain_clusters(v, Some(1))));
    let fake = &h.fake;
    h.ticks(0..5).await;
    assert_eq!(instances_of(fake, PHP), [""]);
    fake.state().load_percent.insert(PHP.into(), 100);
    h.ticks(5..20).await;
    // The burst instance of each top-level cluster is the application
    // instance's own; php there waits for mysql there.
    assert_eq!(instances_of(fake, PHP), ["", BURST]);
    assert_eq!(instances_of(fake, MYSQL), ["", BURST]);
    assert_eq!(
        partitions_of(fake, MYSQL),
        [
            "network-partition-burst/partition-c",
            "network-partition-local/partition-a"
        ]
    );
    fake.state().load_percent.insert(PHP.into(), 0);
    h.ticks(20..80).await;
    assert_eq!(instances_of(fake, PHP), [""]);
    assert_eq!(instances_of(fake, MYSQL), [""]);
}

/// Running containers of a cluster per group instance.
fn count_by_instance(fake: &Fake, cluster: &str) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for i in instances_of(fake, cluster) {
        *n.entry(i).or_default() += 1;
    }
    n
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(start_paused = true)]
async fn scaling_dependents_of_a_group_scale_together_in_one_group_instance_only() {
    // Two instances of the group, whose definition says mysql and php
    // scale together; mysql may have two members.
    let h = Harness::deployed(samples_with(
        |file, v| {
            if file.ends_with("php-mysql-group.json") {
                v["dependencies"]["scalingDependents"] =
                    serde_json::json!([{"aliases": ["cartridge.my-mysql", "cartridge.my-php"]}]);
            }
            if file.ends_with("php-mysql-app.json") {
                let g = &mut v["components"]["groups"][0];
                g["groupMinInstances"] = 2.into();
                g["groupMaxInstances"] = 2.into();
                g["cartridges"][0]["cartridgeMax"] = 2.into();
            }
            big_host(file, v);
        },
        &[],
    ));
    let fake = &h.fake;
    h.ticks(0..6).await;
    // php of the first instance alone is busy: ceil(100 / 70) = 2, a
    // factor of 2 over its minimum, so mysql and php of that instance go
    // to two members each; the other instance stays as it is.
    fake.state()
        .instance_load_percent
        .insert((PHP.into(), G1.into()), 100);
    h.ticks(6..14).await;
    assert_eq!(count_by_instance(fake, PHP), counts(&[(G1, 2), (G2, 1)]));
    assert_eq!(count_by_instance(fake, MYSQL), counts(&[(G1, 2), (G2, 1)]));
    // Load gone: both back to one, together.
    fake.state().instance_load_percent.clear();
    h.ticks(14..60).await;
    assert_eq!(count_by_instance(fake, PHP), counts(&[(G1, 1), (G2, 1)]));
    assert_eq!(count_by_instance(fake, MYSQL), counts(&[(G1, 1), (G2, 1)]));
}

const WORKER: &str = "php-mysql-app.my-worker.worker.domain";

#[tokio::test(start_paused = true)]
async fn scaling_dependents_naming_a_group_and_a_cartridge_scale_together() {
    // The application's dependencies: the group (1 to 2 instances, group
    // scaling on, php at one member) and a top-level cartridge scale
    // together: the group by its instances, the cartridge by its members.
    let worker = serde_json::json!({
        "type": "worker", "category": "framework", "provider": "strato",
        "portMapping": [{"name": "w", "protocol": "tcp", "port": 9000, "proxyPort": 0}],
        "iaasProvider": [{"type": "strato", "imageId": "strato/sample-http:1"}],
        "property": [{"name": "cpu", "value": "100m"}, {"name": "memory", "value": "32Mi"}]
    });
    let h = Harness::deployed(samples_with(
        |file, v| {
            if file.ends_with("php-mysql-app.json") {
                let c = &mut v["components"];
                c["groups"][0]["groupMaxInstances"] = 2.into();
                c["groups"][0]["groupScalingEnabled"] = true.into();
                c["groups"][0]["cartridges"][1]["cartridgeMax"] = 1.into();
                c["cartridges"] = serde_json::json!([{
                    "type": "worker", "cartridgeMin": 1, "cartridgeMax": 3,
                    "subscribableInfo": {
                        "alias": "my-worker",
                        "autoscalingPolicy": "autoscaling-policy-web",
                        "deploymentPolicy": "deployment-policy-local"
                    }
                }]);
                c["dependencies"] = serde_json::json!({
                    "scalingDependents": [{"aliases": ["group.my-php-mysql", "cartridge.my-worker"]}]
                });
            }
            big_host(file, v);
        },
        &[(Kind::Cartridge, worker)],
    ));
    let (ctl, fake) = (&h.ctl, &h.fake);
    h.ticks(0..6).await;
    assert_eq!(count_by_instance(fake, WORKER), counts(&[("", 1)]));
    assert_eq!(instances_of(fake, PHP), [G1]);
    // php at its maximum: the group would add an instance; in the set,
    // that is a factor of 2 for all of it: a second group instance and a
    // second worker member.
    fake.state().load_percent.insert(PHP.into(), 100);
    let mut events = ctl.subscribe();
    h.ticks(6..12).await;
    assert_eq!(count_by_instance(fake, WORKER), counts(&[("", 2)]));
    assert_eq!(instances_of(fake, PHP), [G1, G2]);
    assert_eq!(instances_of(fake, MYSQL), [G1, G2]);
    let decisions = group_decisions(&drain(&mut events));
    assert!(
        decisions.iter().any(|d| d.2 == GroupAction::Dependents),
        "{decisions:?}"
    );
    assert!(decisions
        .iter()
        .any(|d| d.2 == GroupAction::AddInstance && d.3 == G2));
    // Load gone: the set goes back to one of each, together.
    fake.state().load_percent.insert(PHP.into(), 0);
    h.ticks(12..60).await;
    assert_eq!(count_by_instance(fake, WORKER), counts(&[("", 1)]));
    assert_eq!(instances_of(fake, PHP), [G1]);
    // The worker busy: its factor 2 brings a second group instance (a
    // new number: numbers are not reused).
    fake.state().load_percent.insert(WORKER.into(), 100);
    h.ticks(60..66).await;
    assert_eq!(count_by_instance(fake, WORKER), counts(&[("", 2)]));
    assert_eq!(instances_of(fake, PHP), [G1, G3]);
}

#[tokio::test(start_paused = true)]
async fn all_at_once_runs_an_application_instance_in_every_network_partition() {
    let h = Harness::deployed(two_network_partitions("all-at-once", |_| {}));
    h.ticks(0..6).await;
    // Both network partitions from the start, neither of them burst; the
    // group and its clusters at their minimum in each.
    let both = [
        (String::new(), "network-partition-local".to_owned(), false),
        (BURST.to_owned(), BURST_NP.to_owned(), false),
    ];
    assert_eq!(app_instances(&h), both);
    let in_burst = format!("{BURST}/my-php-mysql-2");
    assert_eq!(instances_of(&h.fake, PHP), [in_burst.as_str(), G1]);
    assert_eq!(
        partitions_of(&h.fake, MYSQL),
        [
            "network-partition-burst/partition-c",
            "network-partition-local/partition-a"
        ]
    );
    // Idle, they stay: neither is a burst one.
    h.ticks(6..80).await;
    assert_eq!(app_instances(&h), both);
    assert_eq!(instances_of(&h.fake, PHP), [in_burst.as_str(), G1]);
}

#[test]
fn instances_relate_within_their_common_group_instance_and_application_instance() {
    let g = |v: &[&str]| -> Vec<String> { v.iter().map(|s| (*s).to_owned()).collect() };
    let (top, s, si) = (g(&[]), g(&["s"]), g(&["s", "i"]));
    // php in s-1/i-2 and mysql in s-1: same instance of `s`.
    assert!(related("s-1/i-2", &si, "s-1", &s));
    assert!(!related("s-1/i-2", &si, "s-2", &s));
    // Two clusters of `i`: the same instance of `i`, not just of `s`.
    assert!(related("s-1/i-2", &si, "s-1/i-2", &si));
    assert!(!related("s-1/i-2", &si, "s-1/i-3", &si));
    // A top-level cluster relates to everything in its application
    // instance, and to nothing in another.
    assert!(related("s-1/i-2", &si, "", &top));
    assert!(!related("s-1/i-2", &si, "@np2", &top));
    assert!(related("@np2/s-3/i-5", &si, "@np2", &top));
    assert!(related("@np2/s-3", &s, "@np2/s-3/i-5", &si));
    // The scope of a set declared by `s` (depth 1), by `i` (2), by the
    // application (0).
    assert_eq!(scope_of("s-1/i-2", 1), "s-1");
    assert_eq!(scope_of("s-1/i-2", 2), "s-1/i-2");
    assert_eq!(scope_of("s-1/i-2", 0), "");
    assert_eq!(scope_of("@np2/s-3/i-5", 1), "@np2/s-3");
    assert_eq!(scope_of("@np2", 0), "@np2");
    assert!(within("s-1/i-2", ""));
    assert!(!within("@np2/s-3", ""));
    assert!(within("@np2/s-3", "@np2"));
    assert_eq!(app_instance_of("@np2/s-3/i-5"), "@np2");
    assert_eq!(group_steps("@np2/s-3/i-5"), ["s-3", "i-5"]);
}

#[test]
fn burst_instance_ids_from_records_are_checked_against_the_policy() {
    // The sample's network partition, then np2, for every cluster.
    let mut app = nested_app();
    let first = app.plan.network_partitions[0].clone();
    app.plan.network_partitions.push("np2".into());
    for c in app.clusters.values_mut() {
        let mut np2 = c.plan.network_partitions[0].clone();
        np2.id = "np2".into();
        c.plan.network_partitions.push(np2);
    }
    assert!(app.adopt_instance(PHP, "@np2/s-4/i-9"));
    // The first network partition has no `@` id; unknown ones are refused.
    assert!(!app.adopt_instance(PHP, &format!("@{first}/s-4/i-9")));
    assert!(!app.adopt_instance(PHP, "@np3/s-4/i-9"));
    assert!(!app.adopt_instance(MYSQL, "@np2"));
    app.ensure_instances();
    assert_eq!(app.app_insts, ["", "@np2"]);
    // groupMinInstances (2) in each application instance.
    assert_eq!(keys(&app, MYSQL), ["@np2/s-4", "@np2/s-7", "s-5", "s-6"]);
}

/// A deploy that cannot open one of a cluster's listeners opens none: the
/// listeners of that cluster opened before it are closed again.
#[tokio::test(start_paused = true)]
async fn a_deploy_that_cannot_listen_leaves_no_listener_open() {
    // Ports the system gave out (no port offset): the second stays taken,
    // the first is free again.
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let second = taken.local_addr().unwrap().port();
    let first = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut changes = many_members(1);
    let two_ports = r#"{ "type": "tiny", "provider": "strato", "category": "framework",
        "host": "strato.local", "displayName": "tiny", "description": "small",
        "version": "1", "multiTenant": "false",
        "portMapping": [ { "name": "http", "protocol": "http", "port": "80", "proxyPort": "FIRST" },
                         { "name": "alt", "protocol": "http", "port": "81", "proxyPort": "SECOND" } ],
        "iaasProvider": [ { "type": "strato", "imageId": "strato/sample-http:1", "property": [] } ],
        "property": [ { "name": "cpu", "value": "10m" }, { "name": "memory", "value": "16Mi" } ] }"#
        .replace("FIRST", &first.to_string())
        .replace("SECOND", &second.to_string());
    changes[0] =
        Change::add(strato_paas_model::parse(Kind::Cartridge, two_ports.as_bytes()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    Store::open(&dir.path().join("paas.redb"))
        .unwrap()
        .apply(&samples::changes().unwrap())
        .unwrap();
    let h = Harness::over(dir, Fake::default(), 0);
    h.ctl.apply(&changes).unwrap();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", first)).is_ok(),
        "the first proxy port is free before the deploy"
    );
    let err = h
        .ctl
        .deploy("many-app", samples::APPLICATION_POLICY)
        .unwrap_err();
    assert!(matches!(err, ControlError::Listen(_)), "{err}");
    assert!(!h.ctl.is_deployed("many-app"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", first)).is_ok(),
        "the listener opened before the failure is closed"
    );
    drop(taken);
}

/// With load-balancer threads of its own (the daemon's setup), a deployed
/// cluster's listener is served there, not on the controller's runtime:
/// it answers (503 while no member is active) while this test's only
/// runtime thread is blocked in a plain socket read; undeploy closes it.
#[tokio::test(flavor = "current_thread")]
async fn listeners_are_served_on_the_load_balancer_threads_when_given() {
    use std::io::{Read, Write};
    let fake = Fake::default();
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let mut store = Store::open(&dir.path().join("paas.redb")).unwrap();
    store.apply(&samples::changes().unwrap()).unwrap();
    let threads = Arc::new(strato_lb::Threads::start(2, strato_lb::Sched::Normal).unwrap());
    let config = Config {
        port_offset: offset,
        lb_addr: IpAddr::from([127, 0, 0, 1]),
        lb_threads: Some(Arc::clone(&threads)),
        ..Config::default()
    };
    let ctl = Controller::new(fake, store, config);
    ctl.deploy(samples::APPLICATION, samples::APPLICATION_POLICY)
        .unwrap();
    let port = u16::try_from(8280 + offset).unwrap();
    // Blocking I/O on the runtime's one thread: only another runtime can
    // answer. (The timeout ends the test instead of hanging it if not.)
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    ctl.undeploy(samples::APPLICATION).unwrap();
    for _ in 0..20 {
        if !ctl.is_deployed(samples::APPLICATION) {
            break;
        }
        ctl.reconcile_once(now_ms()).await;
    }
    assert!(!ctl.is_deployed(samples::APPLICATION));
    let mut closed = false;
    for _ in 0..500 {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "port {port} still bound after undeploy");
}
