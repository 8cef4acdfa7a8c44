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
//!   which needs at least three samples (else 0).
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
//!   exceeds the policy's `instanceRoundingFactor`.
//!
//! Where strato differs, on purpose: the window slides (Stratos used
//! tumbling one-minute batches); the counter of scale-down decisions resets
//! on any other decision and after a scale-down (so "consecutive" means
//! consecutive); a scale-down also waits `cooldown_ms` after the last scaling
//! action; round-robin placement looks past full partitions; the cluster's
//! network partitions are used in order, so when one is at its maximum new
//! members burst into the next (Stratos did this a level up, in the
//! application monitor); values are f64 where Stratos used float.
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
    /// Memory consumption of a member, percent of its limit.
    MemoryConsumption {
        member: String,
        at_ms: i64,
        value: f64,
    },
    /// Load average of a member, percent of its cpu.
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
            window_ms: 10_000,
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
