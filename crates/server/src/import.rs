//! Orders from CSV: the format planners export from spreadsheets and ERPs. Shared by the CLI
//! (`microfactory orders import`) and the API (`POST /api/v1/orders/import`).
//!
//! The file has a header row naming the columns, in any order: `number`, `customer`, `variant`
//! (a variant code), `quantity`, `due` (RFC 3339, e.g. `2026-12-01T18:00:00+08:00`) and optionally
//! `priority` (1–10, default 1) and `material_ready` (RFC 3339; when the material arrives); the columns only an export has are read past. An import is all or nothing: every row is checked first, and if
//! any row is bad, every bad row is reported with its line number and nothing is written.

use std::collections::{HashMap, HashSet};

use model::{FieldError, NewOrder, Order, OrderId, Timestamp, Validate, VariantId};
use store::{Store, StoreError};
use time::format_description::well_known::Rfc3339;

/// One bad row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The column at fault (or `row` for the row as a whole).
    pub column: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, {}: {}", self.line, self.column, self.message)
    }
}

/// What an import did.
#[derive(Debug)]
pub enum ImportOutcome {
    /// Every row was imported, but for the rows of orders already there when those are skipped
    /// ([`Existing::Skip`]): their numbers and ids, in the file's order.
    Imported(Vec<Order>, Vec<(String, OrderId)>),
    /// Some rows were bad; nothing was imported.
    Rejected(Vec<RowError>),
    /// The store failed; nothing was imported.
    Failed(StoreError),
}

const REQUIRED: [&str; 5] = ["number", "customer", "variant", "quantity", "due"];
const OPTIONAL: [&str; 2] = ["priority", "material_ready"];
/// The columns `GET /orders/export` adds after the import's: read past, so an export (edited in a
/// spreadsheet) imports as it is.
const EXPORT_ONLY: [&str; 8] =
    ["status", "created_at", "finished_at", "delivered", "eta", "late", "id", "revision"];
/// A valid time that stands in for one that did not parse while the rest of its row is checked.
const STAND_IN_TIME: Timestamp = time::macros::datetime!(2100-01-01 00:00 UTC);

/// Bad rows reported at most; past this the report says how many more there were.
const MAX_REPORTED: usize = 100;

/// Whether `csv` holds nothing but perhaps a byte-order mark and blank space: no import at all,
/// which callers refuse before parsing (the API with a 400, as any empty body).
pub fn is_empty_file(csv: &[u8]) -> bool {
    csv.strip_prefix(b"\xef\xbb\xbf").unwrap_or(csv).iter().all(u8::is_ascii_whitespace)
}

/// What an import does with a row whose order number is in use already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuses the file, naming the row: a file is new orders.
    #[default]
    Refuse,
    /// Leaves the order as it is and imports the rest: a file sent again, or a list of open
    /// orders sent every few minutes, imports only what is new. A file with no orders then
    /// imports nothing, and is no error.
    Skip,
}

/// Parses, checks and imports `csv` in one transaction.
pub fn import_csv(
    store: &Store,
    csv: &[u8],
    now: Timestamp,
    existing: Existing,
    actor: Option<&str>,
) -> ImportOutcome {
    // A number taken by someone else between the file's check and its write is in use by the
    // time of the write: skipping, the file is read again (a few times at most) and skips it too.
    let mut tries = 0;
    loop {
        tries += 1;
        match import_checked(store, csv, now, existing, actor) {
            Ok(outcome) => return outcome,
            Err(Taken { .. }) if existing == Existing::Skip && tries < 3 => {}
            Err(Taken { line, message }) => {
                return ImportOutcome::Rejected(vec![RowError { line, column: "number".into(), message }]);
            }
        }
    }
}

/// A number in use by the time of the write: someone else took it after the file was checked.
struct Taken {
    line: u64,
    message: String,
}

fn import_checked(
    store: &Store,
    csv: &[u8],
    now: Timestamp,
    existing: Existing,
    actor: Option<&str>,
) -> Result<ImportOutcome, Taken> {
    let (orders, lines, skipped) = match parse(store, csv, existing) {
        Ok(parsed) => parsed,
        Err(Parse::Rows(errors)) => return Ok(ImportOutcome::Rejected(errors)),
        Err(Parse::Store(error)) => return Ok(ImportOutcome::Failed(error)),
    };
    let mut known = Vec::with_capacity(skipped.len());
    for number in skipped {
        match store.order_by_number(&number) {
            Ok(Some(order)) => known.push((number, order.id)),
            // Deleted since it was looked at: still none of this file's business.
            Ok(None) => {}
            Err(error) => return Ok(ImportOutcome::Failed(error)),
        }
    }
    if orders.is_empty() {
        return Ok(ImportOutcome::Imported(Vec::new(), known));
    }
    Ok(match store.create_orders_by(&orders, now, actor) {
        Ok(created) => ImportOutcome::Imported(created, known),
        Err(StoreError::InRow { index, source }) => {
            let line = lines[index];
            let errors = match *source {
                // The check found every number free (a repeat within the file is a row error).
                StoreError::Conflict { field: Some(field), message } if field == "number" => {
                    return Err(Taken { line, message });
                }
                StoreError::Conflict { field, message } => {
                    vec![RowError { line, column: field.unwrap_or_else(|| "row".into()), message }]
                }
                StoreError::Invalid(problems) => problems.into_iter().map(|p| row_error(line, p)).collect(),
                other => return Ok(ImportOutcome::Failed(other)),
            };
            ImportOutcome::Rejected(errors)
        }
        Err(error) => ImportOutcome::Failed(error),
    })
}

enum Parse {
    Rows(Vec<RowError>),
    Store(StoreError),
}

fn row_error(line: u64, problem: FieldError) -> RowError {
    let column = if problem.field == "variant_id" { "variant".to_string() } else { problem.field };
    RowError { line, column, message: problem.message }
}

/// The file's new orders and their lines, and the numbers of those skipped as already there.
type Parsed = (Vec<NewOrder>, Vec<u64>, Vec<String>);

fn parse(store: &Store, csv: &[u8], existing: Existing) -> Result<Parsed, Parse> {
    // Windows line endings: the reader takes "\r\n" as two line ends when it numbers lines, so
    // every error would name the line above the bad one. (A line break inside a quoted field, a
    // customer's name on two lines, becomes "\n" too; nothing the import keeps is multi-line.)
    let csv: std::borrow::Cow<'_, [u8]> = if csv.windows(2).any(|pair| pair == b"\r\n") {
        let mut unix = Vec::with_capacity(csv.len());
        for (index, byte) in csv.iter().enumerate() {
            if !(*byte == b'\r' && csv.get(index + 1) == Some(&b'\n')) {
                unix.push(*byte);
            }
        }
        unix.into()
    } else {
        csv.into()
    };
    // Row lengths are checked below: a trailing comma (empty fields past the header's) is fine.
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(&*csv);
    let header_error =
        |message: String| Parse::Rows(vec![RowError { line: 1, column: "header".into(), message }]);
    let headers = reader.headers().map_err(|e| header_error(csv_message(&e)))?.clone();
    if headers.len() == 1 && headers.get(0).is_some_and(|name| name.contains(';') || name.contains('\t')) {
        return Err(header_error(
            "the columns must be separated by commas; this file uses semicolons or tabs (save it as \"CSV UTF-8\")"
                .into(),
        ));
    }
    let mut columns = HashMap::new();
    // Columns without a name, as a spreadsheet writes past the last one used: read past while
    // they are empty.
    let mut unnamed = Vec::new();
    for (index, name) in headers.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        if name.is_empty() {
            unnamed.push(index);
            continue;
        }
        if EXPORT_ONLY.contains(&name.as_str()) {
            continue;
        }
        if !REQUIRED.contains(&name.as_str()) && !OPTIONAL.contains(&name.as_str()) {
            return Err(header_error(format!(
                "unknown column {name:?}; expected {} and optionally {}",
                REQUIRED.join(", "),
                OPTIONAL.join(", ")
            )));
        }
        if columns.insert(name.clone(), index).is_some() {
            return Err(header_error(format!("column {name:?} appears twice")));
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|c| !columns.contains_key(**c)) {
        return Err(header_error(format!("missing column {missing:?}")));
    }

    let mut variants: HashMap<String, Option<VariantId>> = HashMap::new();
    let mut seen_numbers = HashSet::new();
    let mut orders = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut bad_rows = 0usize;
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                errors.push(RowError { line, column: "row".into(), message: csv_message(&error) });
                bad_rows += 1;
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let trailing_empty =
            record.len() > headers.len() && record.iter().skip(headers.len()).all(str::is_empty);
        if record.len() != headers.len() && !trailing_empty {
            // An unclosed quote swallows the line ends after it, so its field runs on to the end.
            let message = if record.iter().any(|field| field.contains('\n')) {
                "a quote (\") opened on this line is never closed, so the rest of the file was read as one field"
                    .to_string()
            } else {
                format!(
                    "has {} fields where the header has {} (a missing or extra comma?)",
                    record.len(),
                    headers.len()
                )
            };
            errors.push(RowError { line, column: "row".into(), message });
            bad_rows += 1;
            continue;
        }
        let field = |name: &str| {
            let text = columns.get(name).and_then(|i| record.get(*i)).unwrap_or("");
            match name {
                "number" | "customer" | "variant" => unescape(text),
                _ => text,
            }
        };
        let mut row_errors = Vec::new();
        let mut bad = |column: &str, message: &str| {
            row_errors.push(RowError { line, column: column.into(), message: message.into() })
        };
        if let Some(index) = unnamed.iter().find(|i| record.get(**i).is_some_and(|text| !text.is_empty())) {
            bad("row", &format!("has a value in column {}, which has no name in the header", index + 1));
        }

        let code = field("variant");
        let variant = match variants.get(code) {
            Some(found) => *found,
            None => {
                let found = store.variant_by_code(code).map_err(Parse::Store)?.map(|v| v.id);
                variants.insert(code.to_string(), found);
                found
            }
        };
        if variant.is_none() {
            bad("variant", &format!("no variant has the code {code:?}"));
        }
        let quantity = field("quantity").parse::<u32>();
        if quantity.is_err() {
            bad("quantity", "must be a whole number from 1 to 1000000");
        }
        let due = Timestamp::parse(field("due"), &Rfc3339);
        if due.is_err() {
            bad("due", "must be an RFC 3339 time, e.g. 2026-12-01T18:00:00+08:00");
        }
        let priority = match field("priority") {
            "" => Ok(1),
            text => text.parse::<u8>(),
        };
        if priority.is_err() {
            bad("priority", "must be a whole number from 1 to 10");
        }
        let material_ready = match field("material_ready") {
            "" => Ok(None),
            text => Timestamp::parse(text, &Rfc3339).map(Some),
        };
        if material_ready.is_err() {
            bad("material_ready", "must be an RFC 3339 time, e.g. 2026-11-30T08:00:00+08:00");
        }
        let number = field("number").trim().to_string();
        // In any case: `so-1` below `SO-1` is the same order to people.
        if !number.is_empty() && !seen_numbers.insert(number.to_ascii_lowercase()) {
            bad("number", "appears on an earlier line of this file (in this or another case)");
        }
        // The order's own rules run even when some fields did not parse, with stand-ins for
        // those, so one report names every problem of the row; problems of a field that did not
        // parse are left out, as it is named already.
        let readable = variant.is_some()
            && quantity.is_ok()
            && due.is_ok()
            && priority.is_ok()
            && material_ready.is_ok();
        let order = NewOrder {
            number,
            customer: field("customer").to_string(),
            variant_id: variant.unwrap_or(VariantId(0)),
            quantity: quantity.unwrap_or(1),
            due: due.unwrap_or(STAND_IN_TIME),
            priority: priority.unwrap_or(1),
            material_ready: material_ready.unwrap_or(None),
        }
        .trimmed();
        let named: HashSet<String> = row_errors.iter().map(|e| e.column.clone()).collect();
        row_errors.extend(
            order.problems().into_iter().map(|p| row_error(line, p)).filter(|e| !named.contains(&e.column)),
        );
        if readable && row_errors.is_empty() {
            orders.push(order);
            lines.push(line);
        }
        if !row_errors.is_empty() {
            bad_rows += 1;
            errors.extend(row_errors);
        }
    }
    // Every number already in use, not only the first the store would trip over.
    let taken: HashSet<String> = store
        .taken_order_numbers(orders.iter().map(|o| o.number.as_str()))
        .map_err(Parse::Store)?
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut skipped = Vec::new();
    match existing {
        Existing::Refuse => {
            for (order, line) in orders.iter().zip(&lines) {
                if taken.contains(&order.number) {
                    errors.push(RowError {
                        line: *line,
                        column: "number".into(),
                        message: "number is already in use (?existing=skip imports the other rows)".into(),
                    });
                    bad_rows += 1;
                }
            }
            if orders.is_empty() && errors.is_empty() {
                errors.push(RowError {
                    line: 2,
                    column: "row".into(),
                    message: "the file has no orders".into(),
                });
            }
        }
        Existing::Skip => {
            let mut kept = (Vec::with_capacity(orders.len()), Vec::with_capacity(lines.len()));
            for (order, line) in orders.into_iter().zip(lines) {
                if taken.contains(&order.number) {
                    skipped.push(order.number);
                } else {
                    kept.0.push(order);
                    kept.1.push(line);
                }
            }
            (orders, lines) = kept;
        }
    }
    errors.sort_by_key(|e| e.line);
    if errors.is_empty() {
        return Ok((orders, lines, skipped));
    }
    if errors.len() > MAX_REPORTED {
        errors.truncate(MAX_REPORTED);
        errors.push(RowError {
            line: 0,
            column: "row".into(),
            message: format!("{bad_rows} bad rows in all; only the first {MAX_REPORTED} problems are listed"),
        });
    }
    Err(Parse::Rows(errors))
}

/// A text field as the export wrote it: one that starts like a formula there got a leading `'`
/// (see `spreadsheet_safe` in the orders API), which the import takes off again, so an export
/// imports as it is.
fn unescape(text: &str) -> &str {
    let formula = |text: &str| text.trim_start_matches(' ').starts_with(['=', '+', '-', '@', '\t', '\r']);
    match text.strip_prefix('\'') {
        // `'=Acme` was `=Acme`; `''=Acme` was `'=Acme` (a quote of its own, kept).
        Some(rest) if formula(rest) || rest.strip_prefix('\'').is_some_and(formula) => rest,
        _ => text,
    }
}

/// A CSV reader's error in the words of someone fixing the file.
fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "the file is not UTF-8 text; save it as \"CSV UTF-8\"".into(),
        _ => error.to_string(),
    }
}
