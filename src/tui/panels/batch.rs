//! Batch: plan, profile, batch ID and card count of the next batch; state, progress, counts,
//! rate and ETA of the current one; the keys that drive it.

use super::{block, clip};
use crate::tui::app::{App, Field, Modal, Panel, Phase};
use crate::tui::stats::fmt_hms;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let b = block(app, Panel::Batch, String::new(), focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let t = &app.theme;
    let w = inner.width as usize;
    let label = |s: &str| Span::styled(format!(" {s:<10} "), t.header());
    let mut lines = Vec::new();
    for field in Field::ALL {
        let value = match (&app.modal, field) {
            (Modal::Edit { field: ef, buf }, _) if *ef == field => format!("{buf}▏"),
            (_, Field::Plan) => app
                .form
                .plan_path()
                .map_or("(none in test-plans/: Enter, then / types a path)".into(), |p| p.display().to_string()),
            (_, Field::Profile) => app
                .form
                .profile_path()
                .map_or("(none in profiles/: Enter, then / types a path)".into(), |p| p.display().to_string()),
            (_, Field::BatchId) => app.form.batch_id.clone(),
            (_, Field::Count) if app.form.count.is_empty() => "(profile default)".into(),
            (_, Field::Count) => app.form.count.clone(),
            // Not fields of this panel.
            _ => String::new(),
        };
        let editing = matches!(&app.modal, Modal::Edit { field: ef, .. } if *ef == field);
        let style = if editing {
            t.accent()
        } else if focused && app.form.field == field {
            t.selected()
        } else {
            t.text()
        };
        let mark = if focused && app.form.field == field { "▸" } else { " " };
        lines.push(Line::from(vec![
            label(field.label()),
            Span::styled(clip(&value, w.saturating_sub(14)), style),
            Span::raw(format!(" {mark}")),
        ]));
        if field == Field::Profile {
            if let Some(note) = &app.form.profile_note {
                lines.push(Line::from(vec![label(""), Span::styled(clip(note, w.saturating_sub(14)), t.fail())]));
            }
        }
    }
    // Started without a profile and none here can run a batch: which, and why each cannot.
    if !app.unusable_profiles.is_empty() && !app.batch.phase.active() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(" No profile here can run a batch:", t.fail()));
        for (p, why) in &app.unusable_profiles {
            let name = p.display().to_string();
            lines.push(Line::from(vec![
                Span::raw(format!("  {name}: ")),
                Span::styled(clip(why, w.saturating_sub(name.len() + 4).max(8)), t.dim()),
            ]));
        }
        lines.push(Line::styled(" Pick another profile (Enter on Profile; / types a path).", t.dim()));
    }
    lines.push(Line::raw(""));
    let bs = &app.batch;
    let now = app.now.mono;
    let state_style = match bs.phase {
        Phase::Failed(_) => t.fail(),
        Phase::Finished => t.pass(),
        Phase::Running => t.accent(),
        _ => t.text(),
    };
    let mut state = vec![label("State"), Span::styled(bs.phase.word().to_string(), state_style)];
    if !bs.id.is_empty() {
        state.push(Span::raw(format!("  batch {}", bs.id)));
    }
    lines.push(Line::from(state));
    if let Phase::Failed(e) = &bs.phase {
        lines.push(Line::from(vec![label("Error"), Span::styled(e.clone(), t.fail())]));
    }
    if let Some(d) = &bs.dir {
        lines.push(Line::from(vec![label("Folder"), Span::raw(clip(&d.display().to_string(), w.saturating_sub(14)))]));
    }
    let done = bs.done();
    let frac = if bs.total > 0 { done as f64 / bs.total as f64 } else { 0.0 };
    let bar_w = w.saturating_sub(26).clamp(4, 40);
    lines.push(Line::from(vec![
        label("Progress"),
        Span::styled(bar(frac, bar_w), t.accent()),
        Span::raw(format!(" {done}/{} {:>3.0}%", bs.total, frac * 100.0)),
    ]));
    lines.push(Line::from(vec![
        label("Verdicts"),
        Span::raw(format!("done {done}  ")),
        Span::styled(format!("pass {}", bs.pass), t.pass()),
        Span::raw("  "),
        Span::styled(format!("fail {}", bs.fail), if bs.fail > 0 { t.fail() } else { t.text() }),
        Span::raw("  "),
        Span::styled(format!("aborted {}", bs.aborted), if bs.aborted > 0 { t.fail() } else { t.text() }),
    ]));
    if bs.done_before > 0 {
        lines.push(Line::from(vec![
            label(""),
            Span::styled(format!("incl. {} certified before this run (resumed)", bs.done_before), t.dim()),
        ]));
    }
    let rate = bs.per_hour(now).map_or("—".into(), |r| format!("{r:.0} cards/h"));
    let eta = bs.eta(now).map_or("—".into(), fmt_hms);
    lines.push(Line::from(vec![
        label("Rate"),
        Span::raw(format!("{rate}   ETA {eta}   elapsed {}", fmt_hms(bs.elapsed(now)))),
    ]));
    if let Some(s) = &bs.summary {
        lines.push(Line::from(vec![label("Summary"), Span::raw(clip(&s.display().to_string(), w.saturating_sub(14)))]));
    }
    lines.push(Line::raw(""));
    let key = |k: &str, what: &str| vec![Span::styled(format!(" {k}"), t.key()), Span::raw(format!(" {what} "))];
    let mut keys = Vec::new();
    keys.extend(key("s", if app.start_resumes() { "resume" } else { "start" }));
    keys.extend(key("p", if bs.phase == Phase::Paused { "resume" } else { "pause" }));
    keys.extend(key("x", "stop"));
    keys.extend(key("Enter", "pick / edit"));
    lines.push(Line::from(keys));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// A text progress bar, readable without colours.
pub fn bar(frac: f64, width: usize) -> String {
    let full = ((frac.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(full), "░".repeat(width - full))
}
