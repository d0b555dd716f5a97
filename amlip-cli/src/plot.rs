//! Training plots (`main-node train --plot FILE.svg|.png`) with the `plotters` crate: the test
//! metric (accuracy, or MSE for regression) and the training loss per round, each shard's model
//! as a thin line and the aggregate as a thick one. The font (DejaVu Sans, whose licence is
//! beside it in `assets/`) is embedded, so plots need nothing installed.

use std::path::Path;

use plotters::prelude::*;

use crate::session::TrainPoint;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Not `.svg` or `.png`.
    #[error("{0}: a plot is written as .svg or .png")]
    Format(String),
    /// Nothing to plot.
    #[error("no training progress to plot")]
    Empty,
    /// The drawing failed (the file could not be written...).
    #[error("cannot draw {path}: {why}")]
    Draw {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Checks, before training, that `path` names a file a plot can be written as.
pub fn check_path(path: &Path) -> Result<(), PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("svg") || ext.eq_ignore_ascii_case("png") {
        Ok(())
    } else {
        Err(PlotError::Format(path.display().to_string()))
    }
}

/// Writes the plot of `points` to `path` (`.svg` or `.png`), titled `title`.
pub fn write(path: &Path, points: &[TrainPoint], title: &str) -> Result<(), PlotError> {
    if points.is_empty() {
        return Err(PlotError::Empty);
    }
    let name = path.display().to_string();
    // Registering the same font twice is harmless; it must be there before any text is laid out.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let draw = |why: String| PlotError::Draw {
        path: name.clone(),
        why,
    };
    let size = (1200, 500);
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase)
        .as_deref()
    {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_on(&root, points, title).map_err(|e| draw(e.to_string()))?;
            root.present().map_err(|e| draw(e.to_string()))
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_on(&root, points, title).map_err(|e| draw(e.to_string()))?;
            root.present().map_err(|e| draw(e.to_string()))
        }
        _ => Err(PlotError::Format(name)),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    points: &[TrainPoint],
    title: &str,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let regression = points.iter().any(|p| p.mse.is_some());
    let has_loss = points.iter().any(|p| p.loss.is_some());
    let panels = if has_loss {
        root.split_evenly((1, 2))
    } else {
        vec![root.clone()]
    };
    let rounds = points.iter().map(|p| p.round).max().unwrap_or(1).max(1);
    let metric = |p: &TrainPoint| if regression { p.mse } else { p.accuracy };
    let name = if regression {
        "test MSE"
    } else {
        "test accuracy"
    };
    panel(&panels[0], points, rounds, name, &metric)?;
    if has_loss {
        panel(&panels[1], points, rounds, "training loss", &|p| p.loss)?;
    }
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    points: &[TrainPoint],
    rounds: usize,
    name: &str,
    value: &dyn Fn(&TrainPoint) -> Option<f64>,
) -> DrawResult<DB> {
    let values: Vec<f64> = points.iter().filter_map(value).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(name, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5f64..rounds as f64 + 0.5, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc(name)
        .x_labels(rounds.min(10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let mut shards: Vec<Option<usize>> = points.iter().map(|p| p.shard).collect();
    shards.sort();
    shards.dedup();
    for (i, shard) in shards.iter().enumerate() {
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.shard == *shard)
            .filter_map(|p| Some((p.round as f64, value(p)?)))
            .collect();
        if series.is_empty() {
            continue;
        }
        let (color, width, label) = match shard {
            None => (BLACK.to_rgba(), 3, "aggregate".to_owned()),
            Some(s) => (Palette99::pick(i).to_rgba(), 1, format!("shard {}", s + 1)),
        };
        let style = ShapeStyle::from(&color).stroke_width(width);
        chart
            .draw_series(LineSeries::new(series.clone(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        chart.draw_series(
            series
                .iter()
                .map(|&(x, y)| Circle::new((x, y), width + 2, style.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<TrainPoint> {
        let mut v = Vec::new();
        for round in 1..=3 {
            for shard in [Some(0), Some(1), None] {
                v.push(TrainPoint {
                    round,
                    rounds: 3,
                    shard,
                    loss: Some(1.0 / round as f64),
                    accuracy: Some(0.8 + 0.05 * round as f64),
                    mse: None,
                    seconds: round as f64,
                });
            }
        }
        v
    }

    #[test]
    fn svg_and_png_are_written() {
        let dir = std::env::temp_dir().join(format!("amlip-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("p.svg");
        write(&svg, &points(), "test").unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.contains("<svg") && text.contains("aggregate") && text.contains("training loss")
        );
        let png = dir.join("p.png");
        write(&png, &points(), "test").unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        assert!(matches!(
            write(&dir.join("p.pdf"), &points(), "t"),
            Err(PlotError::Format(_))
        ));
        assert!(matches!(write(&svg, &[], "t"), Err(PlotError::Empty)));
    }
}
