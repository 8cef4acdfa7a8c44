//! Autoscaling: Stratos 4.1's predictive rule as a per-cluster state machine.
//!
//! The math reproduces Stratos (facts from its sources, code our own):
//!
//! - **Trend of a statistic over a window** (Stratos's CEP extension,
//!   `GradientFinderWindowProcessor` / `SecondDerivativeFinderWindowProcessor`):
//!   the average of the samples; the gradient between the first and last
//!   sample, per second, over a gap of at least one second
//!   (`(last − first) · 1000 / max(t_last − t_first, 1000 ms)`); the second
//!   derivative as the gradient between the gradients of the two halves
//!   (samples `[0, n/2−1]` and `[n/2, n−1]`, each stamped at its midpoint),
//!   which needs at least three samples (else 0; with exactly three the
//!   first half is one sample with gradient 0, a quirk kept as Stratos has it).
//! - **Prediction** (`RuleTasksDelegator.getPredictedValueForNextMinute`):
//!   `average + gradient·t + ½·secondDerivative·t²` with `t = 1` interval.
//!   Memory consumption and load average are predicted per member and
//!   averaged over the members; requests in flight are predicted for the
//!   cluster.
//! - **Required instances** (`scaling.drl` and its delegator):
//!   requests in flight `ceil(predicted / threshold)`; memory consumption
//!   `min − 1` below the threshold, else
//!   `ceil(min + (predicted − threshold) / ((100 − threshold) / (max − min)))`;
//!   load average `ceil(min · predicted / threshold)`; the cluster needs the
//!   maximum of the three.
//! - **Decisions**: scale up at once when fewer members are active than
//!   required (up to the maximum, counting pending members); scale down when
//!   more are active than required (or one is required and one is active),
//!   only above the minimum and only after `scale_down_deferrals`
//!   consecutive scale-down decisions were deferred (Stratos: 3, its
//!   `getScaleDownRequestsCount() > 2`), removing from the partition the
//!   partition algorithm picks the member with the lowest overall load
//!   `(predicted load average + predicted memory) / 2`.
//! - **Scaling dependents** (`dependent-scaling.drl`): a cluster with scaling
//!   dependents does not scale itself; it reports the factor
//!   `required / min`, the highest factor of the set wins, and every cluster
//!   of the set goes to `min · factor` members, rounded up when the fraction
//!   exceeds the policy's `instanceRoundingFactor` (a group of the set goes
//!   to `ceil(groupMinInstances · factor)` instances; the controller does
//!   that, per instance of the parent that declares the set).
//!
//! Where strato differs, on purpose: the window slides (Stratos used
//! tumbling one-minute batches); the counter of scale-down decisions resets
//! on any other decision and after a scale-down (so "consecutive" means
//! consecutive); a scale-down also waits `cooldown_ms` after the last scaling
//! action; round-robin placement looks past full partitions; values are
//! f64 where Stratos used float. A state made by [`ScalingState::new`] uses
//! the cluster's network partitions in order (new members go to the next
//! when one is at its maximum); the controller, like Stratos, gives each
//! cluster instance one network partition ([`ScalingState::new_in`]) and
//! bursts a level up, with a new application instance in the next one.
//!
//! No clock inside: every call that needs time takes `now_ms`.

use crate::plan::{self, ClusterPlan, PartitionSlot, Placement};
use crate::{AutoscalePolicy, PartitionAlgorithm};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One observation of a statistic at a time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub at_ms: i64,
    pub value: f64,
}

/// Average, gradient (per second) and second derivative (per second²) of a
/// statistic over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trend {
    pub average: f64,
    pub gradient: f64,
    pub second_derivative: f64,
}

/// Stratos's gradient between two points: per second, over at least one
/// second, stamped at the midpoint.
fn gradient(first: Point, last: Point) -> Point {
    let gap = (last.at_ms - first.at_ms).max(1000);
    #[allow(clippy::cast_precision_loss)]
    let value = (last.value - first.value) * 1000.0 / gap as f64;
    Point {
        at_ms: first.at_ms + (last.at_ms - first.at_ms) / 2,
        value,
    }
}

/// The trend of `points` (in time order); `None` when there are none.
pub fn trend(points: &[Point]) -> Option<Trend> {
    let n = points.len();
    let (first, last) = (*points.first()?, *points.last()?);
    #[allow(clippy::cast_precision_loss)]
    let average = points.iter().map(|p| p.value).sum::<f64>() / n as f64;
    let second_derivative = if n > 2 {
        let g1 = gradient(points[0], points[n / 2 - 1]);
        let g2 = gradient(points[n / 2], points[n - 1]);
        gradient(g1, g2).value
    } else {
        0.0
    };
    Some(Trend {
        average,
        gradient: gradient(first, last).value,
        second_derivative,
    })
}

/// `average + gradient·t + ½·secondDerivative·t²`, `t` in intervals (Stratos: 1).
pub fn predict(t: &Trend, intervals: f64) -> f64 {
    t.average + t.gradient * intervals + 0.5 * t.second_derivative * intervals * intervals
}

fn ceil_i64(v: f64) -> i64 {
    if !v.is_finite() {
        return if v > 0.0 { i64::MAX } else { 0 };
    }
    #[allow(clippy::cast_possible_truncation)]
    let c = v.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64;
    c
}

/// Instances needed for `predicted` requests in flight (cluster total) at
/// `threshold` per member: `ceil(predicted / threshold)`.
pub fn required_by_requests_in_flight(predicted: f64, threshold: f64) -> i64 {
    if threshold > 0.0 {
        ceil_i64(predicted / threshold)
    } else {
        0
    }
}

/// Instances needed for a predicted memory consumption (percent) at
/// `threshold`, Stratos's linear ramp from `min` at the threshold to `max`
/// at 100 %; below the threshold, `min − 1` (a scale-down vote).
pub fn required_by_memory_consumption(threshold: f64, predicted: f64, min: i64, max: i64) -> i64 {
    let mut additional = 0.0;
    #[allow(clippy::float_cmp)]
    if predicted != threshold {
        let range = max - min;
        if range != 0 {
            #[allow(clippy::cast_precision_loss)]
            let step = (100.0 - threshold) / range as f64;
            additional = (predicted - threshold) / step;
        }
        if predicted < threshold {
            return min - 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    ceil_i64(min as f64 + additional)
}

/// Instances needed for a predicted load average at `threshold`:
/// `ceil(min · predicted / threshold)`.
pub fn required_by_load_average(threshold: f64, predicted: f64, min: i64) -> i64 {
    if threshold != 0.0 {
        #[allow(clippy::cast_precision_loss)]
        ceil_i64(min as f64 * predicted / threshold)
    } else {
        min
    }
}

/// Stratos's `getRoundedInstanceCount`: up when the fraction exceeds
/// `rounding`, else down.
pub fn rounded_instance_count(required: f64, rounding: f64) -> i64 {
    if required - required.floor() > rounding {
        ceil_i64(required)
    } else {
        ceil_i64(required.floor())
    }
}

/// The member count a dependent cluster goes to for `factor`.
pub fn dependent_required(min: u32, factor: f64, rounding: f64) -> u32 {
    let r = rounded_instance_count(f64::from(min) * factor, rounding);
    u32::try_from(r.max(0)).unwrap_or(u32::MAX)
}

/// The factor that wins in a scaling set: the highest reported.
pub fn highest_factor(factors: impl IntoIterator<Item = f64>) -> Option<f64> {
    factors.into_iter().fold(None, |m, f| match m {
        Some(m) if m >= f => Some(m),
        _ => Some(f),
    })
}

/// Memory consumption in percent: `used / limit · 100` (0 without a limit).
pub fn memory_percent(used_bytes: u64, limit_bytes: u64) -> f64 {
    if limit_bytes == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let p = used_bytes as f64 / limit_bytes as f64 * 100.0;
    p
}

/// A container's analogue of Stratos's load average percentage: cpu time
/// used over an interval, relative to the cpus it may use
/// (`cpu_millis`/1000 cores), times 100. A member busy on all its cpus is
/// at 100, as a host with load equal to its core count is.
pub fn load_percent(cpu_used_ns: u64, interval_ns: u64, cpu_millis: u64) -> f64 {
    if interval_ns == 0 || cpu_millis == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let p = cpu_used_ns as f64 / interval_ns as f64 / (cpu_millis as f64 / 1000.0) * 100.0;
    p
}

/// Samples kept for one statistic, dropped once older than the window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    points: VecDeque<Point>,
}

impl Window {
    /// Records a sample; out-of-order samples are dropped.
    pub fn push(&mut self, p: Point) {
        if !p.value.is_finite() || self.points.back().is_some_and(|b| b.at_ms > p.at_ms) {
            return;
        }
        self.points.push_back(p);
    }

    /// Drops samples older than `now_ms - span_ms`, then gives the trend.
    pub fn trend(&mut self, now_ms: i64, span_ms: i64) -> Option<Trend> {
        while self
            .points
            .front()
            .is_some_and(|p| p.at_ms < now_ms - span_ms)
        {
            self.points.pop_front();
        }
        trend(self.points.make_contiguous())
    }
}

/// The statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Statistic {
    RequestsInFlight,
    MemoryConsumption,
    LoadAverage,
}

/// One observation fed to a [`ScalingState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sample {
    /// Requests in flight of the whole cluster (from the load balancer).
    RequestsInFlight { at_ms: i64, value: f64 },
    /// Memory consumption of a member, percent of its memory (Stratos's
    /// agent: used / total · 100; see [`memory_percent`]).
    MemoryConsumption {
        member: String,
        at_ms: i64,
        value: f64,
    },
    /// Load average of a member, percent of its cpus (Stratos's agent:
    /// one-minute load / cores · 100; see [`load_percent`]).
    LoadAverage {
        member: String,
        at_ms: i64,
        value: f64,
    },
}

/// Tuning of the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingConfig {
    /// Span of the sliding window statistics are computed over.
    pub window_ms: i64,
    /// How many intervals ahead to predict (Stratos: 1; gradients are per second).
    pub predict_intervals: f64,
    /// Consecutive scale-down decisions deferred before one acts (Stratos: 3).
    pub scale_down_deferrals: u32,
    /// Time after any scaling action before a scale-down.
    pub cooldown_ms: i64,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        ScalingConfig {
            window_ms: 2_000,
            predict_intervals: 1.0,
            scale_down_deferrals: 3,
            cooldown_ms: 30_000,
        }
    }
}

/// Why members are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Fewer members than `cartridgeMin`.
    Minimum,
    RequestsInFlight,
    MemoryConsumption,
    LoadAverage,
    /// A scaling dependent asked for it.
    Dependency,
}

/// A member chosen for removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    pub member: String,
    pub placement: Placement,
}

/// What the cluster should do now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Nothing.
    Hold,
    /// Start one member at each placement. The caller registers each with
    /// [`ScalingState::add_member`] before the next evaluation.
    ScaleUp {
        spawn: Vec<Placement>,
        reason: Reason,
        /// More were required than the cluster's maximum allows
        /// (Stratos's "scaling over max" notice: group scaling may help).
        over_max: bool,
    },
    /// More are required but the cluster is at its maximum everywhere.
    AtMax { required: i64 },
    /// A scale-down decision was counted, not acted on.
    ScaleDownDeferred { count: u32 },
    /// A scale-down is due but the last scaling action is too recent.
    CoolingDown { until_ms: i64 },
    /// Stop these members; the state has already forgotten them.
    ScaleDown { remove: Vec<Removal> },
    /// The cluster has scaling dependents: the set decides together (see
    /// [`highest_factor`] and [`ScalingState::apply_dependent`]).
    NotifyDependents { factor: f64 },
}

/// The numbers behind a decision, for `application watch` and logs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub active: u32,
    pub non_terminated: u32,
    pub predicted_requests_in_flight: Option<f64>,
    pub predicted_memory_consumption: Option<f64>,
    pub predicted_load_average: Option<f64>,
    pub required_by_requests_in_flight: Option<i64>,
    pub required_by_memory_consumption: Option<i64>,
    pub required_by_load_average: Option<i64>,
    pub required: i64,
}

/// An evaluation: the figures and the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    pub figures: Figures,
    pub action: Action,
}

#[derive(Debug, Clone)]
struct NetworkPartitionState {
    id: String,
    algorithm: PartitionAlgorithm,
    slots: Vec<PartitionSlot>,
    max: u32,
}

#[derive(Debug, Clone)]
struct MemberState {
    np: usize,
    partition: usize,
    active: bool,
    memory: Window,
    load: Window,
}

/// Thresholds of the three statistics (`None`: not used).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    pub requests_in_flight: Option<f64>,
    pub memory_consumption: Option<f64>,
    pub load_average: Option<f64>,
}

impl From<&AutoscalePolicy> for Thresholds {
    fn from(p: &AutoscalePolicy) -> Self {
        let t = &p.load_thresholds;
        Thresholds {
            requests_in_flight: t.requests_in_flight.map(|t| t.threshold),
            memory_consumption: t.memory_consumption.map(|t| t.threshold),
            load_average: t.load_average.map(|t| t.threshold),
        }
    }
}

/// The autoscaler's state of one cluster.
#[derive(Debug, Clone)]
pub struct ScalingState {
    cluster_id: String,
    min: u32,
    cartridge_max: u32,
    thresholds: Thresholds,
    rounding: f64,
    has_scaling_dependents: bool,
    config: ScalingConfig,
    nps: Vec<NetworkPartitionState>,
    members: BTreeMap<String, MemberState>,
    rif: Window,
    scale_down_requests: u32,
    last_scaling_ms: Option<i64>,
}

impl ScalingState {
    /// The state of a planned cluster under its autoscaling policy, using
    /// its network partitions in order.
    pub fn new(cluster: &ClusterPlan, policy: &AutoscalePolicy, config: ScalingConfig) -> Self {
        ScalingState {
            cluster_id: cluster.cluster_id.clone(),
            min: cluster.min,
            cartridge_max: cluster.max,
            thresholds: Thresholds::from(policy),
            rounding: policy.instance_rounding_factor,
            has_scaling_dependents: cluster.has_scaling_dependents,
            config,
            nps: cluster
                .network_partitions
                .iter()
                .map(|np| NetworkPartitionState {
                    id: np.id.clone(),
                    algorithm: np.algorithm,
                    slots: np.partitions.clone(),
                    max: np.max,
                })
                .collect(),
            members: BTreeMap::new(),
            rif: Window::default(),
            scale_down_requests: 0,
            last_scaling_ms: None,
        }
    }

    /// The state of a cluster's instance in one network partition only (an
    /// application policy with `all-at-once` runs one per network partition).
    pub fn new_in(
        cluster: &ClusterPlan,
        network_partition: &str,
        policy: &AutoscalePolicy,
        config: ScalingConfig,
    ) -> Option<Self> {
        let mut s = ScalingState::new(cluster, policy, config);
        s.nps.retain(|n| n.id == network_partition);
        (!s.nps.is_empty()).then_some(s)
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The most members the cluster may have: Σ over its network
    /// partitions of min(cartridgeMax, Σ partitionMax), bursting included.
    pub fn max_members(&self) -> u32 {
        self.nps.iter().map(|n| n.max).fold(0, u32::saturating_add)
    }

    /// The instance rounding factor of the policy.
    pub fn rounding(&self) -> f64 {
        self.rounding
    }

    /// The cluster's minimum (`cartridgeMin`).
    pub fn min(&self) -> u32 {
        self.min
    }

    /// The cluster's `cartridgeMax`.
    pub fn cartridge_max(&self) -> u32 {
        self.cartridge_max
    }

    /// Registers a member (pending unless `active`) at `placement`.
    /// Returns false if the placement names no partition of this cluster.
    pub fn add_member(&mut self, id: &str, placement: &Placement, active: bool) -> bool {
        let Some(np) = self
            .nps
            .iter()
            .position(|n| n.id == placement.network_partition)
        else {
            return false;
        };
        let Some(partition) = self.nps[np]
            .slots
            .iter()
            .position(|s| s.id == placement.partition)
        else {
            return false;
        };
        self.members.insert(
            id.to_owned(),
            MemberState {
                np,
                partition,
                active,
                memory: Window::default(),
                load: Window::default(),
            },
        );
        true
    }

    /// Marks a member Active (it now counts as serving).
    pub fn member_active(&mut self, id: &str) {
        if let Some(m) = self.members.get_mut(id) {
            m.active = true;
        }
    }

    /// Forgets a member (terminated, or failed and to be replaced).
    pub fn remove_member(&mut self, id: &str) {
        self.members.remove(id);
    }

    /// Members known, active or pending.
    pub fn member_count(&self) -> u32 {
        u32::try_from(self.members.len()).unwrap_or(u32::MAX)
    }

    /// Active members.
    pub fn active_count(&self) -> u32 {
        u32::try_from(self.members.values().filter(|m| m.active).count()).unwrap_or(u32::MAX)
    }

    /// Records a sample; samples of unknown members are dropped.
    pub fn record(&mut self, sample: Sample) {
        match sample {
            Sample::RequestsInFlight { at_ms, value } => self.rif.push(Point { at_ms, value }),
            Sample::MemoryConsumption {
                member,
                at_ms,
                value,
            } => {
                if let Some(m) = self.members.get_mut(&member) {
                    m.memory.push(Point { at_ms, value });
                }
            }
            Sample::LoadAverage {
                member,
                at_ms,
                value,
            } => {
                if let Some(m) = self.members.get_mut(&member) {
                    m.load.push(Point { at_ms, value });
                }
            }
        }
    }

    fn counts(&self, np: usize) -> Vec<u32> {
        let mut counts = vec![0u32; self.nps[np].slots.len()];
        for m in self.members.values().filter(|m| m.np == np) {
            counts[m.partition] += 1;
        }
        counts
    }

    /// Placements for `n` more members: network partitions in order, each up
    /// to its maximum, partitions by its algorithm.
    fn spawn_placements(&self, n: u32) -> Vec<Placement> {
        let mut out = Vec::new();
        for (i, np) in self.nps.iter().enumerate() {
            let mut counts = self.counts(i);
            let here: u32 = counts.iter().sum();
            let room = np.max.saturating_sub(here);
            let want = (n - u32::try_from(out.len()).unwrap_or(n)).min(room);
            for p in plan::place(np.algorithm, &np.slots, &mut counts, want) {
                out.push(Placement {
                    network_partition: np.id.clone(),
                    partition: np.slots[p].id.clone(),
                });
            }
            if u32::try_from(out.len()).unwrap_or(u32::MAX) >= n {
                break;
            }
        }
        out
    }

    /// Predicted per-member statistic averaged over members with samples.
    fn member_average(&mut self, now_ms: i64, memory: bool) -> Option<f64> {
        let (span, ahead) = (self.config.window_ms, self.config.predict_intervals);
        let mut sum = 0.0;
        let mut n = 0u32;
        for m in self.members.values_mut() {
            let w = if memory { &mut m.memory } else { &mut m.load };
            if let Some(t) = w.trend(now_ms, span) {
                sum += predict(&t, ahead);
                n += 1;
            }
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    fn member_load(&mut self, id: &str, now_ms: i64) -> f64 {
        let (span, ahead) = (self.config.window_ms, self.config.predict_intervals);
        let Some(m) = self.members.get_mut(id) else {
            return 0.0;
        };
        let la = m
            .load
            .trend(now_ms, span)
            .map(|t| predict(&t, ahead))
            .unwrap_or(0.0);
        let mc = m
            .memory
            .trend(now_ms, span)
            .map(|t| predict(&t, ahead))
            .unwrap_or(0.0);
        (la + mc) / 2.0
    }

    fn figures(&mut self, now_ms: i64) -> (Figures, Reason) {
        let min = i64::from(self.min);
        let max = i64::from(self.cartridge_max);
        let (span, ahead) = (self.config.window_ms, self.config.predict_intervals);
        let mut f = Figures {
            active: self.active_count(),
            non_terminated: self.member_count(),
            ..Figures::default()
        };
        let mut best = (i64::MIN, Reason::Minimum);
        if let Some(th) = self.thresholds.requests_in_flight {
            let p = self
                .rif
                .trend(now_ms, span)
                .map(|t| predict(&t, ahead))
                .unwrap_or(0.0);
            let r = required_by_requests_in_flight(p, th);
            f.predicted_requests_in_flight = Some(p);
            f.required_by_requests_in_flight = Some(r);
            if r > best.0 {
                best = (r, Reason::RequestsInFlight);
            }
        }
        if let Some(th) = self.thresholds.memory_consumption {
            let p = self.member_average(now_ms, true).unwrap_or(0.0);
            let r = required_by_memory_consumption(th, p, min, max);
            f.predicted_memory_consumption = Some(p);
            f.required_by_memory_consumption = Some(r);
            if r > best.0 {
                best = (r, Reason::MemoryConsumption);
            }
        }
        if let Some(th) = self.thresholds.load_average {
            let p = self.member_average(now_ms, false).unwrap_or(0.0);
            let r = required_by_load_average(th, p, min);
            f.predicted_load_average = Some(p);
            f.required_by_load_average = Some(r);
            if r > best.0 {
                best = (r, Reason::LoadAverage);
            }
        }
        f.required = if best.0 == i64::MIN { min } else { best.0 };
        (f, best.1)
    }

    /// Runs the rules once at `now_ms`.
    pub fn evaluate(&mut self, now_ms: i64) -> Evaluation {
        let (figures, reason) = self.figures(now_ms);
        let action = self.decide(&figures, reason, now_ms);
        Evaluation { figures, action }
    }

    fn decide(&mut self, f: &Figures, reason: Reason, now_ms: i64) -> Action {
        let non_terminated = f.non_terminated;
        // The minimum rule comes first (Stratos's mincheck.drl).
        if non_terminated < self.min {
            self.scale_down_requests = 0;
            let spawn = self.spawn_placements(self.min - non_terminated);
            if spawn.is_empty() {
                return Action::AtMax {
                    required: i64::from(self.min),
                };
            }
            self.last_scaling_ms = Some(now_ms);
            return Action::ScaleUp {
                spawn,
                reason: Reason::Minimum,
                over_max: false,
            };
        }
        let active = i64::from(f.active);
        let required = f.required;
        let scale_up = active < required;
        let scale_down = active > required || (required == 1 && active == 1);
        if scale_up {
            self.scale_down_requests = 0;
            if self.has_scaling_dependents {
                return Action::NotifyDependents {
                    factor: self.factor(required),
                };
            }
            return self.grow_to(required, reason, now_ms);
        }
        if !scale_down || non_terminated <= self.min {
            self.scale_down_requests = 0;
            return Action::Hold;
        }
        if self.scale_down_requests < self.config.scale_down_deferrals {
            self.scale_down_requests += 1;
            return Action::ScaleDownDeferred {
                count: self.scale_down_requests,
            };
        }
        if let Some(last) = self.last_scaling_ms {
            let until = last.saturating_add(self.config.cooldown_ms);
            if now_ms < until {
                return Action::CoolingDown { until_ms: until };
            }
        }
        if self.has_scaling_dependents {
            self.scale_down_requests = 0;
            return Action::NotifyDependents {
                factor: self.factor(required),
            };
        }
        self.scale_down_requests = 0;
        match self.pick_removal(now_ms) {
            Some(r) => {
                self.last_scaling_ms = Some(now_ms);
                Action::ScaleDown { remove: vec![r] }
            }
            None => Action::Hold,
        }
    }

    fn factor(&self, required: i64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let r = required as f64;
        r / f64::from(self.min.max(1))
    }

    fn grow_to(&mut self, required: i64, reason: Reason, now_ms: i64) -> Action {
        let max = i64::from(self.max_members());
        let target = required.min(max);
        let additional = target - i64::from(self.member_count());
        if additional <= 0 {
            return if required > max {
                Action::AtMax { required }
            } else {
                Action::Hold
            };
        }
        let spawn = self.spawn_placements(u32::try_from(additional).unwrap_or(u32::MAX));
        if spawn.is_empty() {
            return Action::AtMax { required };
        }
        self.last_scaling_ms = Some(now_ms);
        Action::ScaleUp {
            spawn,
            reason,
            over_max: required > max,
        }
    }

    /// The member to remove: the last network partition with members, the
    /// partition its algorithm gives up first, the least-loaded member there.
    fn pick_removal(&mut self, now_ms: i64) -> Option<Removal> {
        let np = (0..self.nps.len())
            .rev()
            .find(|i| self.members.values().any(|m| m.np == *i))?;
        let counts = self.counts(np);
        let partition = plan::scale_down_partition(self.nps[np].algorithm, &counts)?;
        let candidates: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.np == np && m.partition == partition)
            .map(|(id, _)| id.clone())
            .collect();
        let mut best: Option<(f64, String)> = None;
        for id in candidates {
            let load = self.member_load(&id, now_ms);
            if best.as_ref().is_none_or(|(b, _)| load < *b) {
                best = Some((load, id));
            }
        }
        let (_, member) = best?;
        self.members.remove(&member);
        Some(Removal {
            member,
            placement: Placement {
                network_partition: self.nps[np].id.clone(),
                partition: self.nps[np].slots[partition].id.clone(),
            },
        })
    }

    /// Dependent scaling (`dependent-scaling.drl`): go to `required` members
    /// at once, within the maximum and never below the minimum.
    pub fn apply_dependent(&mut self, required: u32, now_ms: i64) -> Action {
        let required = required.max(self.min);
        let n = self.member_count();
        if n < required {
            self.scale_down_requests = 0;
            return self.grow_to(i64::from(required), Reason::Dependency, now_ms);
        }
        if n > required {
            let mut remove = Vec::new();
            for _ in required..n {
                match self.pick_removal(now_ms) {
                    Some(r) => remove.push(r),
                    None => break,
                }
            }
            self.last_scaling_ms = Some(now_ms);
            return Action::ScaleDown { remove };
        }
        Action::Hold
    }
}

/// What a group instance does about its children's notices (Stratos's
/// `GroupMonitor`: group scaling, else the notice goes up to the parent,
/// where the application bursts into its next network partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupDecision {
    /// Nothing to do.
    Hold,
    /// Start another instance of the group (its clusters at their minimum).
    AddInstance,
    /// Stop one instance of the group.
    RemoveInstance,
    /// Pass the notice to the parent (group scaling off or at its limit).
    Escalate,
}

/// Decides for a group with `instances` running, bounded by
/// `[min, max]` (`groupMinInstances`, `groupMaxInstances`), given whether a
/// child cluster is over its maximum and whether every child is at or below
/// its minimum.
pub fn group_decision(
    group_scaling_enabled: bool,
    instances: u32,
    min: u32,
    max: u32,
    child_over_max: bool,
    children_below_min: bool,
) -> GroupDecision {
    if child_over_max {
        if group_scaling_enabled && instances < max {
            GroupDecision::AddInstance
        } else {
            GroupDecision::Escalate
        }
    } else if children_below_min && group_scaling_enabled && instances > min {
        GroupDecision::RemoveInstance
    } else {
        GroupDecision::Hold
    }
}

/// Whether a cluster instance's figures ask to go below its minimum
/// (Stratos's `ScalingDownBeyondMinEvent`: the rule would scale down but
/// the cluster is at `cartridgeMin`); a group instance whose clusters all
/// say so may be removed.
pub fn below_min(f: &Figures, min: u32) -> bool {
    let active = i64::from(f.active);
    let scale_down = active > f.required || (f.required == 1 && active == 1);
    scale_down && f.non_terminated <= min
}

/// Whether an action says more members were required than the cluster
/// may have (Stratos's `ScalingOverMaxEvent`).
pub fn over_max(action: &Action) -> bool {
    matches!(
        action,
        Action::AtMax { .. } | Action::ScaleUp { over_max: true, .. }
    )
}

/// The group monitor's state for the instances of one group under one
/// parent instance: [`group_decision`] with the clusters' rule for
/// removals (consecutive decisions, then a cooldown after the last
/// change of the instance count).
#[derive(Debug, Clone)]
pub struct GroupScaling {
    config: ScalingConfig,
    remove_requests: u32,
    last_change_ms: Option<i64>,
}

/// What the group monitor does this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupAction {
    Hold,
    /// Start another group instance.
    AddInstance,
    /// Stop the newest group instance.
    RemoveInstance,
    /// A removal was counted, not acted on.
    RemoveDeferred {
        count: u32,
    },
    /// A removal is due but the last change is too recent.
    CoolingDown {
        until_ms: i64,
    },
    /// Over max and no room here: the parent's business.
    Escalate,
    /// The group is in a scaling set: its decision to add or remove an
    /// instance went to the set as a factor, which moves the whole set.
    Dependents,
}

impl GroupScaling {
    pub fn new(config: ScalingConfig) -> Self {
        GroupScaling {
            config,
            remove_requests: 0,
            last_change_ms: None,
        }
    }

    /// Decides at `now_ms` for `instances` running (bounded by `min` and
    /// `max`). `settling`: an instance has not all its clusters at their
    /// minimum of Active members yet, so no other is added meanwhile (the
    /// new one takes load once up).
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        group_scaling_enabled: bool,
        instances: u32,
        min: u32,
        max: u32,
        child_over_max: bool,
        children_below_min: bool,
        settling: bool,
        now_ms: i64,
    ) -> GroupAction {
        match group_decision(
            group_scaling_enabled,
            instances,
            min,
            max,
            child_over_max,
            children_below_min,
        ) {
            GroupDecision::Hold => {
                self.remove_requests = 0;
                GroupAction::Hold
            }
            GroupDecision::Escalate => {
                self.remove_requests = 0;
                GroupAction::Escalate
            }
            GroupDecision::AddInstance => {
                self.remove_requests = 0;
                if settling {
                    return GroupAction::Hold;
                }
                self.last_change_ms = Some(now_ms);
                GroupAction::AddInstance
            }
            GroupDecision::RemoveInstance => {
                if self.remove_requests < self.config.scale_down_deferrals {
                    self.remove_requests += 1;
                    return GroupAction::RemoveDeferred {
                        count: self.remove_requests,
                    };
                }
                if let Some(last) = self.last_change_ms {
                    let until = last.saturating_add(self.config.cooldown_ms);
                    if now_ms < until {
                        return GroupAction::CoolingDown { until_ms: until };
                    }
                }
                self.remove_requests = 0;
                self.last_change_ms = Some(now_ms);
                GroupAction::RemoveInstance
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PartitionSlot;
    use crate::{LoadThresholds, Threshold};

    fn pts(v: &[(i64, f64)]) -> Vec<Point> {
        v.iter()
            .map(|&(at_ms, value)| Point { at_ms, value })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn trend_of_four_samples_by_hand() {
        // avg (10+20+40+70)/4 = 35; gradient (70−10)/3 s = 20/s;
        // halves: (20−10)/1 s = 10 at 500 ms, (70−40)/1 s = 30 at 2500 ms;
        // second derivative (30−10)/2 s = 10/s²; prediction 35 + 20 + 5 = 60.
        let t = trend(&pts(&[(0, 10.0), (1000, 20.0), (2000, 40.0), (3000, 70.0)])).unwrap();
        assert_eq!(
            t,
            Trend {
                average: 35.0,
                gradient: 20.0,
                second_derivative: 10.0
            }
        );
        assert!(close(predict(&t, 1.0), 60.0));
        assert!(close(predict(&t, 2.0), 35.0 + 40.0 + 20.0));
    }

    #[test]
    fn trend_of_odd_and_tiny_windows_by_hand() {
        // n = 3: halves [0,0] and [1,2]: 0 at 0 ms, (40−10)/1 s = 30 at 1500 ms → 30/1.5 = 20.
        let t = trend(&pts(&[(0, 0.0), (1000, 10.0), (2000, 40.0)])).unwrap();
        assert!(close(t.average, 50.0 / 3.0));
        assert!(close(t.gradient, 20.0));
        assert!(close(t.second_derivative, 20.0));
        // n = 5 (squares): halves [0,1] → 1 at 500, [2,4] → 6 at 3000 → 5/2.5 = 2.
        let t = trend(&pts(&[
            (0, 0.0),
            (1000, 1.0),
            (2000, 4.0),
            (3000, 9.0),
            (4000, 16.0),
        ]))
        .unwrap();
        assert_eq!(
            t,
            Trend {
                average: 6.0,
                gradient: 4.0,
                second_derivative: 2.0
            }
        );
        assert!(close(predict(&t, 1.0), 11.0));
        // Gaps under a second count as one second.
        let t = trend(&pts(&[(0, 0.0), (500, 10.0)])).unwrap();
        assert_eq!(
            t,
            Trend {
                average: 5.0,
                gradient: 10.0,
                second_derivative: 0.0
            }
        );
        let t = trend(&pts(&[(7, 3.0)])).unwrap();
        assert_eq!(
            t,
            Trend {
                average: 3.0,
                gradient: 0.0,
                second_derivative: 0.0
            }
        );
        assert_eq!(trend(&[]), None);
    }

    #[test]
    fn required_instances_by_hand() {
        assert_eq!(required_by_requests_in_flight(60.0, 20.0), 3);
        assert_eq!(required_by_requests_in_flight(61.0, 20.0), 4);
        assert_eq!(required_by_requests_in_flight(0.0, 20.0), 0);
        assert_eq!(required_by_requests_in_flight(-3.0, 20.0), 0);
        assert_eq!(required_by_requests_in_flight(5.0, 0.0), 0);
        // Memory: ramp of (100−70)/(5−1) = 7.5 % per instance above 70 %.
        assert_eq!(required_by_memory_consumption(70.0, 85.0, 1, 5), 3);
        assert_eq!(required_by_memory_consumption(70.0, 71.0, 1, 5), 2);
        assert_eq!(required_by_memory_consumption(80.0, 100.0, 1, 5), 5);
        assert_eq!(required_by_memory_consumption(70.0, 60.0, 1, 5), 0);
        assert_eq!(required_by_memory_consumption(70.0, 70.0, 2, 5), 2);
        assert_eq!(required_by_memory_consumption(80.0, 95.0, 2, 2), 2);
        // Load average: min · predicted / threshold.
        assert_eq!(required_by_load_average(70.0, 140.0, 2), 4);
        assert_eq!(required_by_load_average(70.0, 35.0, 2), 1);
        assert_eq!(required_by_load_average(70.0, 71.0, 1), 2);
        assert_eq!(required_by_load_average(0.0, 50.0, 3), 3);
    }

    #[test]
    fn dependent_rounding_by_hand() {
        assert_eq!(rounded_instance_count(2.3, 0.0), 3);
        assert_eq!(rounded_instance_count(2.3, 0.5), 2);
        assert_eq!(rounded_instance_count(2.6, 0.5), 3);
        assert_eq!(rounded_instance_count(2.0, 0.0), 2);
        assert_eq!(dependent_required(2, 1.5, 0.0), 3);
        assert_eq!(dependent_required(3, 0.5, 0.0), 2);
        assert_eq!(dependent_required(3, 0.5, 0.6), 1);
        assert_eq!(highest_factor([1.0, 2.5, 2.0]), Some(2.5));
        assert_eq!(highest_factor([]), None);
    }

    #[test]
    fn below_min_and_over_max_as_stratos_notices() {
        let f = |active, non_terminated, required| Figures {
            active,
            non_terminated,
            required,
            ..Figures::default()
        };
        // At min 1 with nothing required: it would go below its minimum.
        assert!(below_min(&f(1, 1, 0), 1));
        // required == active == 1 counts as a scale-down (Stratos's rule).
        assert!(below_min(&f(1, 1, 1), 1));
        // Above its minimum it scales down itself.
        assert!(!below_min(&f(2, 2, 0), 1));
        // Load wants it as it is, or more.
        assert!(!below_min(&f(2, 2, 2), 2));
        assert!(!below_min(&f(1, 1, 3), 1));
        assert!(over_max(&Action::AtMax { required: 3 }));
        assert!(over_max(&Action::ScaleUp {
            spawn: vec![],
            reason: Reason::LoadAverage,
            over_max: true
        }));
        assert!(!over_max(&Action::ScaleUp {
            spawn: vec![],
            reason: Reason::LoadAverage,
            over_max: false
        }));
        assert!(!over_max(&Action::Hold));
    }

    #[test]
    fn group_instances_are_added_at_once_and_removed_after_deferrals_and_cooldown() {
        use GroupAction::*;
        let config = ScalingConfig {
            scale_down_deferrals: 2,
            cooldown_ms: 10_000,
            ..ScalingConfig::default()
        };
        let mut g = GroupScaling::new(config);
        // min 2, max 3: over max at 2 instances adds one at once…
        assert_eq!(g.decide(true, 2, 2, 3, true, false, false, 0), AddInstance);
        // …but not a second while the new one is coming up.
        assert_eq!(g.decide(true, 3, 2, 3, true, false, true, 1_000), Escalate);
        let mut h = GroupScaling::new(config);
        assert_eq!(h.decide(true, 2, 2, 3, true, false, true, 0), Hold);
        // At 3 (max) the notice goes up.
        assert_eq!(g.decide(true, 3, 2, 3, true, false, false, 2_000), Escalate);
        // Load gone: two deferred decisions, then the cooldown from the
        // add at 0 holds until 10 000, then the newest goes.
        assert_eq!(
            g.decide(true, 3, 2, 3, false, true, false, 3_000),
            RemoveDeferred { count: 1 }
        );
        assert_eq!(
            g.decide(true, 3, 2, 3, false, true, false, 4_000),
            RemoveDeferred { count: 2 }
        );
        assert_eq!(
            g.decide(true, 3, 2, 3, false, true, false, 5_000),
            CoolingDown { until_ms: 10_000 }
        );
        assert_eq!(
            g.decide(true, 3, 2, 3, false, true, false, 10_000),
            RemoveInstance
        );
        // At min nothing more goes; a busy round resets the count.
        assert_eq!(g.decide(true, 2, 2, 3, false, true, false, 30_000), Hold);
        let mut k = GroupScaling::new(config);
        assert_eq!(
            k.decide(true, 3, 2, 3, false, true, false, 0),
            RemoveDeferred { count: 1 }
        );
        assert_eq!(k.decide(true, 3, 2, 3, false, false, false, 1_000), Hold);
        assert_eq!(
            k.decide(true, 3, 2, 3, false, true, false, 2_000),
            RemoveDeferred { count: 1 }
        );
        // Group scaling off: never added nor removed.
        assert_eq!(k.decide(false, 2, 2, 3, true, false, false, 0), Escalate);
        assert_eq!(k.decide(false, 3, 2, 3, false, true, false, 0), Hold);
    }

    #[test]
    fn group_scaling_adds_instances_up_to_its_max_then_escalates() {
        use GroupDecision::*;
        assert_eq!(group_decision(true, 1, 1, 3, true, false), AddInstance);
        assert_eq!(group_decision(true, 3, 1, 3, true, false), Escalate);
        assert_eq!(group_decision(false, 1, 1, 3, true, false), Escalate);
        assert_eq!(group_decision(true, 2, 1, 3, false, true), RemoveInstance);
        assert_eq!(group_decision(true, 1, 1, 3, false, true), Hold);
        assert_eq!(group_decision(false, 2, 1, 3, false, true), Hold);
        assert_eq!(group_decision(true, 2, 1, 3, false, false), Hold);
    }

    #[test]
    fn one_network_partition_at_a_time_for_all_at_once() {
        let c = cluster(1, 10);
        let mut s =
            ScalingState::new_in(&c, "np2", &policy(Some(10.0), None, None), CONFIG).unwrap();
        assert_eq!(s.max_members(), 2);
        assert_eq!(parts(&s.evaluate(0).action), ["np2/q1"]);
        assert!(ScalingState::new_in(&c, "np9", &policy(Some(1.0), None, None), CONFIG).is_none());
    }

    #[test]
    fn statistics_in_stratos_units() {
        assert_eq!(memory_percent(64 << 20, 256 << 20), 25.0);
        assert_eq!(memory_percent(1, 0), 0.0);
        // Half a cpu used for a second by a member allowed two cpus: 25 %.
        assert_eq!(load_percent(500_000_000, 1_000_000_000, 2000), 25.0);
        assert_eq!(load_percent(2_000_000_000, 1_000_000_000, 2000), 100.0);
        assert_eq!(load_percent(1, 0, 1000), 0.0);
    }

    #[test]
    fn window_slides_and_drops_disorder() {
        let mut w = Window::default();
        for (t, v) in [
            (0, 100.0),
            (5000, 1.0),
            (4000, 50.0),
            (6000, 3.0),
            (7000, f64::NAN),
        ] {
            w.push(Point { at_ms: t, value: v });
        }
        // At 10 s with a 5 s span only 5000 and 6000 remain (4000 came late).
        let t = w.trend(10_000, 5000).unwrap();
        assert_eq!(t.average, 2.0);
        assert_eq!(w.trend(20_000, 5000), None);
    }

    fn cluster(min: u32, max: u32) -> ClusterPlan {
        let np = |id: &str, algorithm, parts: &[(&str, u32)]| crate::plan::NetworkPartitionPlan {
            id: id.into(),
            provider: None,
            algorithm,
            partitions: parts
                .iter()
                .map(|(p, m)| PartitionSlot {
                    id: (*p).into(),
                    max: *m,
                })
                .collect(),
            max: max.min(parts.iter().map(|p| p.1).sum()),
            image: "img".into(),
        };
        ClusterPlan {
            cluster_id: "a.w.web.domain".into(),
            alias: "w".into(),
            cartridge_type: "web".into(),
            hostname: "w.a".into(),
            groups: vec![],
            min,
            max,
            autoscaling_policy: "asp".into(),
            deployment_policy: "dp".into(),
            port_mappings: vec![],
            cpu_millis: None,
            memory_bytes: None,
            network_partitions: vec![
                np(
                    "np1",
                    PartitionAlgorithm::RoundRobin,
                    &[("p1", 2), ("p2", 2)],
                ),
                np("np2", PartitionAlgorithm::OneAfterAnother, &[("q1", 2)]),
            ],
            waits_for: vec![],
            group_instances: 1,
            has_scaling_dependents: false,
            in_group_scaling_subtree: false,
            initial_members: vec![],
        }
    }

    fn policy(rif: Option<f64>, mc: Option<f64>, la: Option<f64>) -> AutoscalePolicy {
        AutoscalePolicy {
            id: "asp".into(),
            display_name: None,
            description: None,
            load_thresholds: LoadThresholds {
                requests_in_flight: rif.map(|threshold| Threshold { threshold }),
                memory_consumption: mc.map(|threshold| Threshold { threshold }),
                load_average: la.map(|threshold| Threshold { threshold }),
            },
            instance_rounding_factor: 0.0,
        }
    }

    const CONFIG: ScalingConfig = ScalingConfig {
        window_ms: 5000,
        predict_intervals: 1.0,
        scale_down_deferrals: 3,
        cooldown_ms: 10_000,
    };

    /// Registers each spawned member as `m0, m1, ...` and makes it active.
    fn register(s: &mut ScalingState, action: &Action, next: &mut usize) -> Vec<String> {
        let Action::ScaleUp { spawn, .. } = action else {
            panic!("not a scale-up: {action:?}")
        };
        spawn
            .iter()
            .map(|p| {
                let id = format!("m{next}");
                *next += 1;
                assert!(s.add_member(&id, p, true));
                id
            })
            .collect()
    }

    fn parts(action: &Action) -> Vec<String> {
        match action {
            Action::ScaleUp { spawn, .. } => spawn
                .iter()
                .map(|p| format!("{}/{}", p.network_partition, p.partition))
                .collect(),
            other => panic!("not a scale-up: {other:?}"),
        }
    }

    fn flat_rif(s: &mut ScalingState, from_ms: i64, to_ms: i64, v: f64) {
        let mut t = from_ms;
        while t <= to_ms {
            s.record(Sample::RequestsInFlight { at_ms: t, value: v });
            t += 1000;
        }
    }

    #[test]
    fn minimum_first_then_scale_up_at_once_then_burst() {
        let mut s = ScalingState::new(&cluster(2, 10), &policy(Some(10.0), None, None), CONFIG);
        assert_eq!(s.max_members(), 6); // np1 holds 4, np2 2
        let mut n = 0;
        let ev = s.evaluate(0);
        assert_eq!(
            ev.action,
            Action::ScaleUp {
                spawn: vec![
                    Placement {
                        network_partition: "np1".into(),
                        partition: "p1".into()
                    },
                    Placement {
                        network_partition: "np1".into(),
                        partition: "p2".into()
                    },
                ],
                reason: Reason::Minimum,
                over_max: false,
            }
        );
        register(&mut s, &ev.action, &mut n);
        // 35 requests in flight, flat → ceil(35/10) = 4 → two more, at once.
        flat_rif(&mut s, 0, 4000, 35.0);
        let ev = s.evaluate(4000);
        assert_eq!(ev.figures.required_by_requests_in_flight, Some(4));
        assert_eq!(ev.figures.predicted_requests_in_flight, Some(35.0));
        assert_eq!(parts(&ev.action), ["np1/p1", "np1/p2"]);
        let Action::ScaleUp {
            reason, over_max, ..
        } = ev.action.clone()
        else {
            unreachable!()
        };
        assert_eq!((reason, over_max), (Reason::RequestsInFlight, false));
        register(&mut s, &ev.action, &mut n);
        // 75 → 8 required; np1 is full, so it bursts into np2 and says it is over max.
        flat_rif(&mut s, 5000, 9000, 75.0);
        let ev = s.evaluate(9000);
        assert_eq!(ev.figures.required, 8);
        assert_eq!(parts(&ev.action), ["np2/q1", "np2/q1"]);
        assert!(matches!(ev.action, Action::ScaleUp { over_max: true, .. }));
        register(&mut s, &ev.action, &mut n);
        flat_rif(&mut s, 10_000, 14_000, 75.0);
        assert_eq!(s.evaluate(14_000).action, Action::AtMax { required: 8 });
    }

    #[test]
    fn pending_members_are_not_spawned_twice() {
        let mut s = ScalingState::new(&cluster(1, 10), &policy(Some(10.0), None, None), CONFIG);
        assert!(s.add_member(
            "a",
            &Placement {
                network_partition: "np1".into(),
                partition: "p1".into()
            },
            true
        ));
        flat_rif(&mut s, 0, 2000, 30.0);
        let ev = s.evaluate(2000);
        let Action::ScaleUp { spawn, .. } = &ev.action else {
            panic!("{ev:?}")
        };
        assert_eq!(spawn.len(), 2);
        for (i, p) in spawn.iter().enumerate() {
            s.add_member(&format!("pending{i}"), p, false);
        }
        // Still 1 active < 3 required, but 3 are on their way.
        assert_eq!(s.evaluate(2500).action, Action::Hold);
        s.member_active("pending0");
        s.member_active("pending1");
        assert_eq!(s.active_count(), 3);
        assert_eq!(s.evaluate(3000).action, Action::Hold);
        // A placement outside the cluster's partitions is refused.
        assert!(!s.add_member(
            "x",
            &Placement {
                network_partition: "np9".into(),
                partition: "p1".into()
            },
            true
        ));
        assert!(!s.add_member(
            "x",
            &Placement {
                network_partition: "np1".into(),
                partition: "q1".into()
            },
            true
        ));
    }

    #[test]
    fn rising_load_is_anticipated() {
        // Requests in flight 10, 20, 30, 40 over 4 s: average 25, gradient
        // 10/s, second derivative 0 → 35 predicted → 4 members, not 3.
        let mut s = ScalingState::new(&cluster(1, 10), &policy(Some(10.0), None, None), CONFIG);
        s.add_member(
            "a",
            &Placement {
                network_partition: "np1".into(),
                partition: "p1".into(),
            },
            true,
        );
        for (i, v) in [10.0, 20.0, 30.0, 40.0].into_iter().enumerate() {
            s.record(Sample::RequestsInFlight {
                at_ms: i as i64 * 1000,
                value: v,
            });
        }
        let ev = s.evaluate(3000);
        assert_eq!(ev.figures.predicted_requests_in_flight, Some(35.0));
        assert_eq!(ev.figures.required, 4);
        assert_eq!(parts(&ev.action).len(), 3);
    }

    #[test]
    fn the_highest_statistic_wins() {
        let mut s = ScalingState::new(
            &cluster(2, 6),
            &policy(Some(100.0), Some(70.0), Some(50.0)),
            CONFIG,
        );
        let mut n = 0;
        let ev = s.evaluate(0);
        let ids = register(&mut s, &ev.action, &mut n);
        for (id, mem, load) in [(&ids[0], 85.0, 50.0), (&ids[1], 85.0, 100.0)] {
            s.record(Sample::MemoryConsumption {
                member: id.clone(),
                at_ms: 0,
                value: mem,
            });
            s.record(Sample::LoadAverage {
                member: id.clone(),
                at_ms: 0,
                value: load,
            });
        }
        // Samples of members the state does not know are dropped.
        s.record(Sample::LoadAverage {
            member: "ghost".into(),
            at_ms: 0,
            value: 1e9,
        });
        let ev = s.evaluate(0);
        let f = &ev.figures;
        assert_eq!(f.required_by_requests_in_flight, Some(0));
        // (100−70)/(6−2) = 7.5 % per instance: 2 + 15/7.5 = 4.
        assert_eq!(
            (
                f.predicted_memory_consumption,
                f.required_by_memory_consumption
            ),
            (Some(85.0), Some(4))
        );
        // 2 · 75 / 50 = 3.
        assert_eq!(
            (f.predicted_load_average, f.required_by_load_average),
            (Some(75.0), Some(3))
        );
        assert_eq!(f.required, 4);
        assert!(matches!(
            ev.action,
            Action::ScaleUp {
                reason: Reason::MemoryConsumption,
                ..
            }
        ));
    }

    #[test]
    fn scale_down_waits_for_consecutive_decisions_and_the_cooldown() {
        let mut s = ScalingState::new(
            &cluster(1, 10),
            &policy(Some(10.0), None, Some(50.0)),
            CONFIG,
        );
        let mut n = 0;
        let ev = s.evaluate(0);
        assert_eq!(register(&mut s, &ev.action, &mut n), ["m0"]); // np1/p1
        flat_rif(&mut s, 0, 0, 35.0);
        let up = s.evaluate(0);
        assert_eq!(up.figures.required, 4);
        // Round-robin: p2, then p1 and p2 tie → p1, then p2.
        assert_eq!(parts(&up.action), ["np1/p2", "np1/p1", "np1/p2"]);
        assert_eq!(register(&mut s, &up.action, &mut n), ["m1", "m2", "m3"]);
        // Load falls: 35 → 10 in a second predicts below zero → 0 required.
        flat_rif(&mut s, 1000, 1000, 10.0);
        for k in 1..=3 {
            assert_eq!(
                s.evaluate(1000).action,
                Action::ScaleDownDeferred { count: k }
            );
        }
        // The fourth decision would act, but the scale-up was at 0 s.
        assert_eq!(
            s.evaluate(1000).action,
            Action::CoolingDown { until_ms: 10_000 }
        );
        // 35, 10, 35 predicts 35 → 4 required = 4 active: a hold, which
        // resets the count of consecutive scale-down decisions.
        flat_rif(&mut s, 2000, 2000, 35.0);
        let ev = s.evaluate(2000);
        assert_eq!((ev.figures.required, ev.action), (4, Action::Hold));
        flat_rif(&mut s, 3000, 5000, 10.0);
        for (k, t) in [7000, 8000, 9000].into_iter().enumerate() {
            assert_eq!(
                s.evaluate(t).action,
                Action::ScaleDownDeferred {
                    count: k as u32 + 1
                }
            );
        }
        for (id, load) in [("m0", 40.0), ("m1", 30.0), ("m2", 45.0), ("m3", 10.0)] {
            s.record(Sample::LoadAverage {
                member: id.into(),
                at_ms: 9000,
                value: load,
            });
        }
        // p1 and p2 hold two each; round-robin gives up the last of the
        // fullest, p2 (m1, m3), and its least-loaded member goes.
        let ev = s.evaluate(10_000);
        assert_eq!(ev.figures.predicted_load_average, Some(31.25));
        assert_eq!(
            ev.action,
            Action::ScaleDown {
                remove: vec![Removal {
                    member: "m3".into(),
                    placement: Placement {
                        network_partition: "np1".into(),
                        partition: "p2".into()
                    }
                }]
            }
        );
        assert_eq!(s.member_count(), 3);
        // The next removal needs consecutive decisions again.
        assert_eq!(
            s.evaluate(10_500).action,
            Action::ScaleDownDeferred { count: 1 }
        );
    }

    #[test]
    fn burst_members_go_first_on_scale_down() {
        let config = ScalingConfig {
            scale_down_deferrals: 0,
            cooldown_ms: 0,
            ..CONFIG
        };
        let mut s = ScalingState::new(&cluster(1, 10), &policy(Some(10.0), None, None), config);
        let mut n = 0;
        let ev = s.evaluate(0);
        register(&mut s, &ev.action, &mut n);
        flat_rif(&mut s, 0, 0, 60.0);
        let ev = s.evaluate(0);
        assert_eq!(
            parts(&ev.action),
            ["np1/p2", "np1/p1", "np1/p2", "np2/q1", "np2/q1"]
        );
        register(&mut s, &ev.action, &mut n);
        flat_rif(&mut s, 6000, 6000, 0.0);
        for (t, np) in [(6000, "np2"), (6001, "np2"), (6002, "np1")] {
            let Action::ScaleDown { remove } = s.evaluate(t).action else {
                panic!("at {t}")
            };
            assert_eq!(remove[0].placement.network_partition, np);
        }
    }

    #[test]
    fn never_below_the_minimum() {
        let mut s = ScalingState::new(&cluster(2, 4), &policy(Some(10.0), None, None), CONFIG);
        let mut n = 0;
        let ev = s.evaluate(0);
        register(&mut s, &ev.action, &mut n);
        for t in (20_000..40_000).step_by(1000) {
            assert_eq!(s.evaluate(t).action, Action::Hold, "at {t}");
        }
        // A member that died is replaced by the minimum rule.
        s.remove_member("m0");
        let ev = s.evaluate(40_000);
        assert!(
            matches!(
                ev.action,
                Action::ScaleUp {
                    reason: Reason::Minimum,
                    ..
                }
            ),
            "{ev:?}"
        );
        assert_eq!(parts(&ev.action), ["np1/p1"]);
    }

    #[test]
    fn scaling_dependents_scale_together() {
        let mut plan_a = cluster(2, 6);
        plan_a.has_scaling_dependents = true;
        let mut plan_b = cluster(1, 3);
        plan_b.cluster_id = "a.db.db.domain".into();
        plan_b.has_scaling_dependents = true;
        let p = policy(Some(10.0), None, None);
        let (mut a, mut b) = (
            ScalingState::new(&plan_a, &p, CONFIG),
            ScalingState::new(&plan_b, &p, CONFIG),
        );
        let (mut na, mut nb) = (0, 0);
        let ev = a.evaluate(0);
        register(&mut a, &ev.action, &mut na);
        let ev = b.evaluate(0);
        register(&mut b, &ev.action, &mut nb);
        // a needs 3 (factor 3/2 = 1.5); b is idle (0 required → factor 0).
        flat_rif(&mut a, 0, 0, 25.0);
        let Action::NotifyDependents { factor: fa } = a.evaluate(0).action else {
            panic!()
        };
        assert_eq!(fa, 1.5);
        let fb = match b.evaluate(0).action {
            Action::NotifyDependents { factor } => Some(factor),
            Action::Hold => None,
            other => panic!("{other:?}"),
        };
        let f = highest_factor([Some(fa), fb].into_iter().flatten()).unwrap();
        // Each goes to min · 1.5: a 3, b ceil(1.5) = 2.
        let act_a = a.apply_dependent(dependent_required(a.min(), f, a.rounding()), 0);
        let act_b = b.apply_dependent(dependent_required(b.min(), f, b.rounding()), 0);
        assert_eq!(parts(&act_a).len(), 1);
        assert_eq!(parts(&act_b).len(), 1);
        assert!(matches!(
            act_b,
            Action::ScaleUp {
                reason: Reason::Dependency,
                ..
            }
        ));
        register(&mut a, &act_a, &mut na);
        register(&mut b, &act_b, &mut nb);
        // Back to factor 1: b returns to its minimum at once.
        let act_b = b.apply_dependent(dependent_required(b.min(), 1.0, 0.0), 1000);
        let Action::ScaleDown { remove } = act_b else {
            panic!()
        };
        assert_eq!(remove.len(), 1);
        assert_eq!(b.member_count(), 1);
        // Never below the minimum, whatever the factor.
        let Action::ScaleDown { remove } = a.apply_dependent(0, 2000) else {
            panic!()
        };
        assert_eq!((remove.len(), a.member_count()), (1, 2));
        assert_eq!(a.apply_dependent(0, 3000), Action::Hold);
    }
}
