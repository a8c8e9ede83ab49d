//! The history chart, drawn on the server as inline SVG: one stacked bar per day,
//! one colour per status. The template prints the shapes; labels are escaped there.

use serde::Serialize;
use time::Date;

/// Statuses in stacking order, with their colour and Indonesian label.
pub(crate) const STATUSES: [(&str, &str, &str); 4] = [
    ("sent", "#2e7d32", "terkirim"),
    ("failed", "#c62828", "gagal"),
    ("skipped", "#9e9e9e", "dilewati"),
    ("queued", "#1565c0", "antre"),
];

pub(crate) const WIDTH: i64 = 720;
pub(crate) const HEIGHT: i64 = 200;
const LEFT: i64 = 40;
const BOTTOM: i64 = 24;

/// A rectangle with its tooltip.
#[derive(Debug, Serialize)]
pub(crate) struct Rect {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    fill: &'static str,
    title: String,
}

/// A text label.
#[derive(Debug, Serialize)]
pub(crate) struct Label {
    x: i64,
    y: i64,
    text: String,
}

/// What the template draws.
#[derive(Debug, Serialize)]
pub(crate) struct Chart {
    width: i64,
    height: i64,
    rects: Vec<Rect>,
    labels: Vec<Label>,
    max: i64,
    total: i64,
}

/// `counts(day, status)` for each day, as stacked bars scaled to the busiest day.
pub(crate) fn stacked(days: &[Date], counts: impl Fn(Date, &str) -> i64) -> Chart {
    let plot_h = HEIGHT - BOTTOM - 8;
    let n = i64::try_from(days.len().max(1)).unwrap_or(1);
    let slot = (WIDTH - LEFT) / n;
    let bar_w = (slot - 2).max(1);
    let totals: Vec<i64> = days
        .iter()
        .map(|d| STATUSES.iter().map(|(s, _, _)| counts(*d, s)).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let mut rects = Vec::new();
    let mut labels = vec![
        Label {
            x: 2,
            y: 14,
            text: max.to_string(),
        },
        Label {
            x: 2,
            y: HEIGHT - BOTTOM,
            text: "0".into(),
        },
    ];
    for (i, day) in days.iter().enumerate() {
        let x = LEFT + i64::try_from(i).unwrap_or(0) * slot;
        let mut top = HEIGHT - BOTTOM;
        for (status, fill, label) in STATUSES {
            let v = counts(*day, status);
            if v == 0 || max == 0 {
                continue;
            }
            let h = (v * plot_h / max).max(1);
            top -= h;
            rects.push(Rect {
                x,
                y: top,
                w: bar_w,
                h,
                fill,
                title: format!("{:02}-{:02}: {v} {label}", day.day(), u8::from(day.month())),
            });
        }
        if i % 5 == 0 || i + 1 == days.len() {
            labels.push(Label {
                x,
                y: HEIGHT - 6,
                text: format!("{:02}/{:02}", day.day(), u8::from(day.month())),
            });
        }
    }
    Chart {
        width: WIDTH,
        height: HEIGHT,
        rects,
        labels,
        max,
        total: totals.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn bars_stack_and_scale_to_the_busiest_day() {
        let days = [date!(2026 - 11 - 30), date!(2026 - 12 - 01)];
        let c = stacked(&days, |d, s| match (d.day(), s) {
            (30, "sent") => 10,
            (1, "sent") => 5,
            (1, "failed") => 5,
            _ => 0,
        });
        assert_eq!(c.max, 10);
        assert_eq!(c.total, 20);
        assert_eq!(c.rects.len(), 3);
        let full = HEIGHT - BOTTOM - 8;
        assert_eq!(c.rects[0].h, full);
        assert_eq!(c.rects[1].h + c.rects[2].h, full);
        assert_eq!(
            c.rects[2].y,
            HEIGHT - BOTTOM - full,
            "failed sits on top of sent"
        );
    }
}
