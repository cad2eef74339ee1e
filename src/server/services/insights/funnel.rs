//! The conversion funnel of Link sessions: how many reached each stage, the success rate, the exit codes that
//! ended the others (with the step where each ending arose), and the time from opening to success, overall and
//! per endpoint. A pure computation over [`Outcome`]s (one per session), so the numbers are exact and testable.
//!
//! Definitions (what the CLI, the console and the docs say):
//! - a stage counts a session when it reached that stage at least once (a patient who tries a second plan counts
//!   once); "of previous" divides by the stage before it;
//! - success rate = sessions that ended with success ÷ sessions opened; sign-in success = sessions the plan
//!   authorized ÷ sessions sent to the plan's sign-in;
//! - time to success = from opening to success, in whole seconds; p50 and p90 by the nearest-rank method (the
//!   value at rank ⌈p·n/100⌉ of the sorted times); "within 3 minutes" counts times ≤ 180 s, "within 5" ≤ 300 s;
//! - per endpoint, a session counts for the last plan it chose (sessions that chose none are only in the overall
//!   figures).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    domain::{ExitCode, LinkStep},
    server::store::link_outcomes::Outcome,
};

/// A stage of the funnel, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The session was opened.
    Opened,
    /// The patient agreed on the consent screen.
    Consented,
    /// A plan was chosen (or given by the integrator).
    PlanChosen,
    /// The patient was sent to the plan's sign-in.
    SentToSignIn,
    /// The plan authorized.
    Authorized,
    /// The session ended with success.
    Succeeded,
}

impl Stage {
    /// Every stage, in funnel order.
    pub const ALL: [Stage; 6] =
        [Stage::Opened, Stage::Consented, Stage::PlanChosen, Stage::SentToSignIn, Stage::Authorized, Stage::Succeeded];

    /// The stage in words.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Opened => "Opened",
            Stage::Consented => "Consented",
            Stage::PlanChosen => "Plan chosen",
            Stage::SentToSignIn => "Sent to plan sign-in",
            Stage::Authorized => "Authorized by plan",
            Stage::Succeeded => "Success",
        }
    }

    /// When `o` first reached this stage.
    pub fn reached_at(self, o: &Outcome) -> Option<i64> {
        match self {
            Stage::Opened => Some(o.opened_at),
            Stage::Consented => o.consented_at,
            Stage::PlanChosen => o.chosen_at,
            Stage::SentToSignIn => o.handed_off_at,
            Stage::Authorized => o.authorized_at,
            Stage::Succeeded => o.succeeded_at,
        }
    }
}

/// A share: `count` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Share {
    /// The part.
    pub count: u64,
    /// The whole.
    pub of: u64,
}

impl Share {
    /// The share as a fraction (`None` when the whole is empty).
    pub fn ratio(self) -> Option<f64> {
        (self.of > 0).then(|| self.count as f64 / self.of as f64)
    }

    /// The share in percent with one decimal (`"62.5%"`), or `"–"` when the whole is empty.
    pub fn percent(self) -> String {
        match self.ratio() {
            Some(r) => format!("{:.1}%", r * 100.0),
            None => "–".into(),
        }
    }
}

/// One stage's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageCount {
    /// The stage.
    pub stage: Stage,
    /// Sessions that reached it.
    pub sessions: u64,
    /// Of the sessions opened.
    pub of_opened: Share,
    /// Of the sessions that reached the stage before (none for the first).
    pub of_previous: Option<Share>,
}

/// Sessions that ended without success with one exit code at one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// The exit code.
    pub exit_code: ExitCode,
    /// The step where the ending arose.
    pub step: Option<LinkStep>,
    /// How many sessions.
    pub sessions: u64,
}

/// Time from opening to success (whole seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeToSuccess {
    /// Successful sessions measured.
    pub sessions: u64,
    /// Median (nearest rank).
    pub p50_secs: i64,
    /// 90th percentile (nearest rank).
    pub p90_secs: i64,
    /// Sessions that succeeded within 3 minutes (≤ 180 s).
    pub within_3_min: Share,
    /// Sessions that succeeded within 5 minutes (≤ 300 s).
    pub within_5_min: Share,
}

/// The funnel of one group of sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    /// Sessions opened.
    pub sessions: u64,
    /// Each stage, in order.
    pub stages: Vec<StageCount>,
    /// Succeeded of opened.
    pub success_rate: Share,
    /// Authorized of sent to the plan's sign-in.
    pub sign_in_success: Share,
    /// Endings without success, most frequent first.
    pub endings: Vec<Ending>,
    /// Sessions with no ending yet (still open, or timed out before the sweep ended them).
    pub open: u64,
    /// Time to success, when any session succeeded.
    pub time_to_success: Option<TimeToSuccess>,
}

/// The funnel, overall and per endpoint (by the last plan chosen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Funnel {
    /// Every session.
    pub overall: Block,
    /// Sessions per endpoint id, most sessions first.
    pub per_endpoint: Vec<(String, Block)>,
}

/// The value at rank ⌈p·n/100⌉ of `sorted` (ascending, non-empty), `p` in 1..=100.
pub fn nearest_rank(sorted: &[i64], p: u64) -> i64 {
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    sorted[(rank - 1) as usize]
}

/// The funnel of `outcomes` (one per session).
pub fn compute(outcomes: &[Outcome]) -> Funnel {
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let mut by_endpoint: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        if let Some(e) = o.endpoint_id.as_deref() {
            by_endpoint.entry(e).or_default().push(o);
        }
    }
    let mut per_endpoint: Vec<(String, Block)> =
        by_endpoint.into_iter().map(|(id, group)| (id.to_string(), block(&group))).collect();
    per_endpoint.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then_with(|| a.0.cmp(&b.0)));
    Funnel { overall: block(&all), per_endpoint }
}

fn block(group: &[&Outcome]) -> Block {
    let opened = group.len() as u64;
    let count = |stage: Stage| group.iter().filter(|o| stage.reached_at(o).is_some()).count() as u64;
    let mut stages = Vec::new();
    let mut previous: Option<u64> = None;
    for stage in Stage::ALL {
        let sessions = count(stage);
        stages.push(StageCount {
            stage,
            sessions,
            of_opened: Share { count: sessions, of: opened },
            of_previous: previous.map(|p| Share { count: sessions, of: p }),
        });
        previous = Some(sessions);
    }
    let mut endings: BTreeMap<(&str, &str), (ExitCode, Option<LinkStep>, u64)> = BTreeMap::new();
    for o in group.iter().filter(|o| o.succeeded_at.is_none()) {
        if let (Some(_), Some(code)) = (o.ended_at, o.exit_code) {
            let key = (code.as_str(), o.exit_step.map(LinkStep::as_str).unwrap_or(""));
            endings.entry(key).or_insert((code, o.exit_step, 0)).2 += 1;
        }
    }
    let mut endings: Vec<Ending> =
        endings.into_values().map(|(exit_code, step, sessions)| Ending { exit_code, step, sessions }).collect();
    endings.sort_by(|a, b| {
        b.sessions.cmp(&a.sessions).then_with(|| a.exit_code.as_str().cmp(b.exit_code.as_str()))
    });
    let open = group.iter().filter(|o| o.succeeded_at.is_none() && o.ended_at.is_none()).count() as u64;
    let mut times: Vec<i64> =
        group.iter().filter_map(|o| o.succeeded_at.map(|t| (t - o.opened_at).max(0))).collect();
    times.sort_unstable();
    let succeeded = times.len() as u64;
    let time_to_success = (!times.is_empty()).then(|| TimeToSuccess {
        sessions: succeeded,
        p50_secs: nearest_rank(&times, 50),
        p90_secs: nearest_rank(&times, 90),
        within_3_min: Share { count: times.iter().filter(|t| **t <= 180).count() as u64, of: succeeded },
        within_5_min: Share { count: times.iter().filter(|t| **t <= 300).count() as u64, of: succeeded },
    });
    Block {
        sessions: opened,
        success_rate: Share { count: count(Stage::Succeeded), of: opened },
        sign_in_success: Share { count: count(Stage::Authorized), of: count(Stage::SentToSignIn) },
        stages,
        endings,
        open,
        time_to_success,
    }
}

/// Seconds as people read a duration: `45s`, `2m 05s`, `1h 02m`.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// A block as text lines (the CLI's output), indented by `indent`.
pub fn block_text(b: &Block, indent: &str) -> Vec<String> {
    let mut out = vec![format!("{indent}{:<24}{:>10}{:>12}{:>13}", "stage", "sessions", "of opened", "of previous")];
    for s in &b.stages {
        let prev = s.of_previous.map(Share::percent).unwrap_or_default();
        out.push(format!("{indent}{:<24}{:>10}{:>12}{:>13}", s.stage.label(), s.sessions, s.of_opened.percent(), prev));
    }
    out.push(format!(
        "{indent}Success rate: {} of opened sessions ({} of {}); plan sign-ins authorized: {} ({} of {})",
        b.success_rate.percent(),
        b.success_rate.count,
        b.success_rate.of,
        b.sign_in_success.percent(),
        b.sign_in_success.count,
        b.sign_in_success.of
    ));
    match &b.time_to_success {
        Some(t) => out.push(format!(
            "{indent}Time to success ({} sessions): p50 {}, p90 {}; within 3 minutes {}, within 5 minutes {}",
            t.sessions,
            duration(t.p50_secs),
            duration(t.p90_secs),
            t.within_3_min.percent(),
            t.within_5_min.percent()
        )),
        None => out.push(format!("{indent}Time to success: no successful session")),
    }
    if b.endings.is_empty() {
        out.push(format!("{indent}Endings without success: none"));
    } else {
        out.push(format!("{indent}Endings without success (exit code, the step where it arose, sessions):"));
        for e in &b.endings {
            let step = e.step.map(LinkStep::as_str).unwrap_or("-");
            out.push(format!("{indent}  {:<32}{:<12}{:>8}", e.exit_code.as_str(), step, e.sessions));
        }
    }
    out.push(format!("{indent}No ending yet: {}", b.open));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Mode;

    fn outcome(id: &str, opened: i64) -> Outcome {
        Outcome {
            public_id: id.into(),
            app_id: "app".into(),
            mode: Mode::Test,
            endpoint_id: None,
            opened_at: opened,
            consented_at: None,
            chosen_at: None,
            handed_off_at: None,
            authorized_at: None,
            succeeded_at: None,
            ended_at: None,
            exit_code: None,
            exit_step: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(nearest_rank(&v, 50), 50);
        assert_eq!(nearest_rank(&v, 90), 90);
        assert_eq!(nearest_rank(&[7], 90), 7);
        assert_eq!(nearest_rank(&[1, 2, 3], 50), 2);
        assert_eq!(nearest_rank(&[1, 2, 3], 90), 3);
    }

    #[test]
    fn empty_and_single() {
        let f = compute(&[]);
        assert_eq!(f.overall.sessions, 0);
        assert_eq!(f.overall.success_rate.percent(), "–");
        let mut o = outcome("a", 1000);
        o.consented_at = Some(1010);
        o.ended_at = Some(1020);
        o.exit_code = Some(ExitCode::PatientCancelled);
        o.exit_step = Some(LinkStep::Search);
        let f = compute(&[o]);
        assert_eq!(f.overall.stages[1].sessions, 1);
        assert_eq!(f.overall.endings, vec![Ending { exit_code: ExitCode::PatientCancelled, step: Some(LinkStep::Search), sessions: 1 }]);
        assert_eq!(f.overall.open, 0);
        assert!(f.per_endpoint.is_empty());
    }

    #[test]
    fn durations_read_plainly() {
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(125), "2m 05s");
        assert_eq!(duration(3720), "1h 02m");
    }
}
