//! CSV (and TSV) tables: one sample per row, numeric feature columns, one label column chosen
//! by name or index (the last by default), with or without a header row. Parsed by the `csv`
//! crate; every defect names the file, the line and the column.

use std::path::Path;

use super::raw::{self, RawArray, Values};
use super::{Dataset, DatasetError, LoadOptions, Task};

/// Reads a CSV (`,`) or, for `.tsv` names, tab-separated table.
pub(crate) fn read(path: &Path, opts: &LoadOptions) -> Result<Dataset, DatasetError> {
    let bytes = raw::read_file(path, opts.max_bytes)?;
    let name = path.to_string_lossy().to_lowercase();
    let delimiter = if name.ends_with(".tsv") || name.ends_with(".tsv.gz") {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(&bytes[..]);
    let row_err = |line: u64, what: String| DatasetError::Row {
        path: path.to_owned(),
        line,
        what,
    };
    let mut rows: Vec<(u64, csv::StringRecord)> = Vec::new();
    for r in reader.records() {
        let r = r.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            row_err(line, format!("not valid CSV: {e}"))
        })?;
        let line = r.position().map_or(0, |p| p.line());
        if r.len() == 1 && r[0].is_empty() {
            continue; // a blank line
        }
        rows.push((line, r));
    }
    if rows.is_empty() {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: "the table has no rows".into(),
        });
    }
    let number = |s: &str| s.parse::<f64>().is_ok();
    let header = opts.header.unwrap_or_else(|| {
        let first = &rows[0].1;
        let named = opts
            .label
            .as_deref()
            .is_some_and(|l| !number(l) && first.iter().any(|c| c == l));
        named
            || rows.get(1).is_some_and(|(_, second)| {
                first
                    .iter()
                    .zip(second.iter())
                    .any(|(a, b)| !number(a) && number(b))
            })
    });
    let width = rows[0].1.len();
    let names: Vec<String> = if header {
        rows[0].1.iter().map(str::to_owned).collect()
    } else {
        (0..width).map(|i| format!("column {}", i + 1)).collect()
    };
    let body = if header { &rows[1..] } else { &rows[..] };
    let label = match opts.label.as_deref() {
        None => width - 1,
        Some(l) => match names.iter().position(|n| n == l) {
            Some(i) => i,
            None => match l.parse::<usize>() {
                Ok(i) if i < width => i,
                _ => {
                    return Err(DatasetError::Format {
                        path: path.to_owned(),
                        what: format!(
                            "no label column {l:?}: the columns are {} (name one, or give a 0-based index below {width})",
                            names.join(", ")
                        ),
                    })
                }
            },
        },
    };
    if width < 2 {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: "the table has one column; it needs features and a label".into(),
        });
    }
    if body.is_empty() {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: "the table has a header but no rows".into(),
        });
    }
    raw::check_size(
        path,
        &format!("{} rows of {width} columns", body.len()),
        body.len(),
        width * 4,
        opts.max_bytes,
    )?;
    let mut features = Vec::with_capacity(body.len() * (width - 1));
    let mut labels = Vec::with_capacity(body.len());
    for (line, r) in body {
        if r.len() != width {
            return Err(row_err(
                *line,
                format!(
                    "{} fields, but {} has {width}",
                    r.len(),
                    if header {
                        "the header"
                    } else {
                        "the first row"
                    }
                ),
            ));
        }
        for (j, cell) in r.iter().enumerate() {
            let column = || format!("column {:?}", names[j]);
            if j == label {
                if cell.is_empty() {
                    return Err(row_err(*line, format!("{}: the label is empty", column())));
                }
                if cell.parse::<f64>().is_ok_and(|x| !x.is_finite()) {
                    return Err(row_err(
                        *line,
                        format!("{}: the label is {cell} (labels must be finite)", column()),
                    ));
                }
                if opts.task == Some(Task::Regress)
                    && !cell.parse::<f32>().is_ok_and(f32::is_finite)
                {
                    return Err(row_err(
                        *line,
                        format!(
                            "{}: {cell:?} is not a finite number (a regression target must be)",
                            column()
                        ),
                    ));
                }
                labels.push(cell.to_owned());
                continue;
            }
            match cell.parse::<f32>() {
                Ok(x) if x.is_finite() => features.push(x as f64),
                Ok(x) => {
                    return Err(row_err(
                        *line,
                        format!("{}: {x} (features must be finite numbers)", column()),
                    ))
                }
                Err(_) if cell.is_empty() => {
                    return Err(row_err(*line, format!("{}: the cell is empty", column())))
                }
                Err(_) => {
                    return Err(row_err(
                        *line,
                        format!("{}: {cell:?} is not a number", column()),
                    ))
                }
            }
        }
    }
    let n = labels.len();
    let labels_are_numbers = labels.iter().all(|l| number(l));
    let label_values = if labels_are_numbers {
        Values::Floats(
            labels
                .iter()
                .map(|l| l.parse::<f32>().unwrap_or(f32::NAN) as f64)
                .collect(),
        )
    } else {
        Values::Strings(labels)
    };
    raw::assemble(
        path,
        RawArray {
            name: "features".into(),
            shape: vec![n, width - 1],
            values: Values::Floats(features),
        },
        RawArray {
            name: format!("label column {:?}", names[label]),
            shape: vec![n],
            values: label_values,
        },
        opts.task,
    )
}
