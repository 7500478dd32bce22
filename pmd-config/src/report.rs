//! The `check-host` report: one line per check (and per preparation step), as text or
//! JSON.

use serde::Serialize;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works, but not as well as it should (performance, robustness).
    Warn,
    /// The data plane will not start or not work with this config.
    Fail,
    /// Not applicable to this config.
    Skip,
}

impl Verdict {
    /// The label printed in the text report.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `iommu` or `port fabric0 driver`.
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found.
    pub found: String,
    /// The command (or config change) that fixes it, for warn and fail.
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn ok(name: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Ok,
            found: found.into(),
            fix: None,
        }
    }
    /// A check that does not apply.
    pub fn skip(name: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Skip,
            found: found.into(),
            fix: None,
        }
    }
    /// A warning with its fix.
    pub fn warn(
        name: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
    /// A failure with its fix.
    pub fn fail(
        name: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Fail,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Outcome of one preparation step (`--apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// The step changed the host.
    Done,
    /// The host was already in the wanted state.
    AlreadyDone,
    /// Not applicable to this config.
    Skipped,
    /// Not done on purpose (it would take something the host uses); see the detail.
    Refused,
    /// Tried and failed.
    Failed,
}

impl StepOutcome {
    /// The label printed in the text report.
    pub fn label(self) -> &'static str {
        match self {
            StepOutcome::Done => "done",
            StepOutcome::AlreadyDone => "already done",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Refused => "REFUSED",
            StepOutcome::Failed => "FAILED",
        }
    }
}

/// One preparation step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What the step does, e.g. `bind 0000:3b:00.0 to vfio-pci`.
    pub name: String,
    /// The outcome.
    pub outcome: StepOutcome,
    /// What was done or why not.
    pub detail: String,
}

/// The whole report: preparation steps (with `--apply`) then the checks of the state
/// the host is in afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Preparation steps, in order (empty without `--apply`).
    pub steps: Vec<Step>,
    /// Checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed and no step failed or was refused.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
            && self
                .steps
                .iter()
                .all(|s| !matches!(s.outcome, StepOutcome::Failed | StepOutcome::Refused))
    }

    /// The check named `name`, if present.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The step named `name`, if present.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// One line per step and check (`ok`/`warn`/`FAIL`/`skip`, name, what was found),
    /// each warn and fail followed by an indented `fix:` line, then a summary line.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        for st in &self.steps {
            s.push_str(&format!(
                "apply {:<12} {}: {}\n",
                st.outcome.label(),
                st.name,
                st.detail
            ));
        }
        for c in &self.checks {
            s.push_str(&format!(
                "{:<5} {}: {}\n",
                c.verdict.label(),
                c.name,
                c.found
            ));
            if let Some(fix) = &c.fix {
                s.push_str(&format!("      fix: {fix}\n"));
            }
        }
        let count = |v: Verdict| self.checks.iter().filter(|c| c.verdict == v).count();
        s.push_str(&format!(
            "{} ok, {} warn, {} FAIL, {} skip: {}\n",
            count(Verdict::Ok),
            count(Verdict::Warn),
            count(Verdict::Fail),
            count(Verdict::Skip),
            if self.passed() {
                "host is ready"
            } else {
                "host is NOT ready"
            }
        ));
        s
    }

    /// The report as JSON: `{"passed": bool, "steps": [...], "checks": [...]}`.
    pub fn render_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            passed: bool,
            steps: &'a [Step],
            checks: &'a [Check],
        }
        let out = Out {
            passed: self.passed(),
            steps: &self.steps,
            checks: &self.checks,
        };
        serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json() {
        let r = Report {
            steps: vec![Step {
                name: "mount hugetlbfs".into(),
                outcome: StepOutcome::AlreadyDone,
                detail: "/dev/hugepages".into(),
            }],
            checks: vec![
                Check::ok("a", "fine"),
                Check::fail("iommu", "none", "reboot"),
                Check::skip("b", "n/a"),
            ],
        };
        assert!(!r.passed());
        assert_eq!(
            r.render_text(),
            "apply already done mount hugetlbfs: /dev/hugepages\n\
             ok    a: fine\n\
             FAIL  iommu: none\n      fix: reboot\n\
             skip  b: n/a\n\
             1 ok, 0 warn, 1 FAIL, 1 skip: host is NOT ready\n"
        );
        let j: serde_json::Value = serde_json::from_str(&r.render_json()).unwrap();
        assert_eq!(j["passed"], false);
        assert_eq!(j["checks"][1]["verdict"], "fail");
        assert_eq!(j["checks"][1]["fix"], "reboot");
        assert_eq!(j["steps"][0]["outcome"], "already-done");
    }
}
