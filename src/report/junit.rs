//! JUnit XML for CI dashboards: a test case per threshold and per compared metric, failures carrying the
//! numbers; a `run` case so a report without gates is still not empty (k6-jslib-summary#4).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::format::{fmt_allowed, fmt_delta, fmt_observed, fmt_secs};
use super::gate::{describe_inconclusive, describe_regression, verdict_word};
use crate::result::Change;
use crate::result::{RunReport, RunStatus};

fn failure(message: String) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    let message = crate::redact::escape_control(&message).into_owned();
    s.set_message(message.clone()).set_description(message);
    s
}

pub fn render(r: &RunReport) -> String {
    let name = &r.scenario.name;
    let mut report = Report::new(format!("run-load-test {name}"));
    report.set_time(Duration::try_from_secs_f64(r.duration_s).unwrap_or_default());

    let mut run = TestSuite::new(format!("{name}.run"));
    let status = match r.status {
        RunStatus::Completed => TestCaseStatus::success(),
        RunStatus::Interrupted => failure("the run was interrupted; its numbers are partial".into()),
        RunStatus::Aborted => failure("a threshold with abort_on_fail stopped the run".into()),
        RunStatus::Failed => failure(r.failure.as_ref().map_or_else(
            || "the run measured nothing valid".to_string(),
            |f| format!("the run measured nothing valid: {}", f.message),
        )),
    };
    let mut case = TestCase::new("run completed", status);
    case.set_classname(format!("{name}.run")).set_system_out(format!(
        "{} requests, {} failures, {:.1} req/s over {}",
        r.totals.requests,
        r.totals.failures,
        r.totals.rps,
        fmt_secs(r.duration_s)
    ));
    run.add_test_case(case);
    report.add_test_suite(run);

    if !r.thresholds.is_empty() {
        let mut suite = TestSuite::new(format!("{name}.thresholds"));
        for v in &r.thresholds {
            let status = if v.pass {
                TestCaseStatus::success()
            } else {
                failure(format!("threshold `{}` failed: observed {}", v.threshold, fmt_observed(v)))
            };
            let mut case = TestCase::new(v.threshold.clone(), status);
            case.set_classname(format!("{name}.thresholds")).set_system_out(format!("observed {}", fmt_observed(v)));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }

    if let Some(c) = &r.comparison {
        let mut suite = TestSuite::new(format!("{name}.baseline"));
        for d in &c.rows {
            let status = match d.verdict {
                Change::Regression => failure(describe_regression(d)),
                Change::Missing => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message("measured in the baseline, not in this run");
                    s
                }
                // Neither a pass nor a failure: CI dashboards show it apart, and the exit code (4, or what
                // --on-inconclusive chose) carries the decision.
                Change::Inconclusive => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(describe_inconclusive(d));
                    s
                }
                _ => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(format!("{} {}", d.metric, d.stat), status);
            case.set_classname(format!("{name}.baseline")).set_system_out(format!(
                "{}: delta {}, tolerated {}",
                verdict_word(d.verdict),
                fmt_delta(d),
                fmt_allowed(d)
            ));
            suite.add_test_case(case);
        }
        if !c.warnings.is_empty() {
            suite.set_system_err(c.warnings.iter().map(|w| format!("warning: {w}\n")).collect::<String>());
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}
