//! Importing numbers from CSV: the engine behind the portal's upload and `nmp import numbers`.
//!
//! One row per number, at most [`MAX_ROWS`]; the columns are the number's JSON paths joined by
//! `_` ([`COLUMNS`], as the public portal names them), several values in one cell separated by
//! `;` (`InboundCalling;OutboundCalling`), an empty cell for a value left out. A file is read
//! ([`read`]), every row checked against the domain's rules without writing anything
//! ([`check`]: each refusal names the row, the column and the rule), then the rows that passed
//! are written a hundred at a time ([`import`]); a row refused then does not stop the others.
//! [`results_csv`] gives the file back with each row's outcome; [`export_csv`] writes numbers in
//! the same format, so that export, edit, import is a round trip.

use std::collections::{HashMap, HashSet};

use commands::{CommandError, CommandService};
use domain::{AccountName, DomainError, E164, Number, NumberDetails};
use serde::Serialize;
use serde_json::{Map, Value};
use store::EventMetadata;

use crate::error::ApiError;
use crate::wire::number::{MAX_BATCH, NumberResource};

/// The most rows a file may hold.
pub const MAX_ROWS: usize = 10_000;

/// The columns nmp reads, in the order it writes them.
pub const COLUMNS: &[&str] = &[
    "telephoneNumber",
    "accountName",
    "configuration_customSipHeader",
    "serviceDetails_teamsOperatorConnect_enabled",
    "serviceDetails_teamsOperatorConnect_assignmentStatus",
    "serviceDetails_teamsOperatorConnect_configuration_usage",
    "serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities",
    "serviceDetails_teamsOperatorConnect_configuration_additionalUsages",
    "serviceDetails_teamsOperatorConnect_configuration_civicAddressId",
    "serviceDetails_teamsOperatorConnect_configuration_locationId",
    "serviceDetails_teamsOperatorConnect_configuration_allowTenantAddressUpdate",
    "serviceDetails_teamsOperatorConnect_configuration_displayedCountryCode",
    "serviceDetails_teamsPhoneMobile_enabled",
    "serviceDetails_teamsPhoneMobile_assignmentStatus",
    "serviceDetails_teamsPhoneMobile_configuration_usage",
    "serviceDetails_teamsPhoneMobile_configuration_choosableCapabilities",
    "serviceDetails_teamsPhoneMobile_configuration_additionalUsages",
    "serviceDetails_teamsPhoneMobile_configuration_civicAddressId",
    "serviceDetails_teamsPhoneMobile_configuration_locationId",
    "serviceDetails_teamsPhoneMobile_configuration_allowTenantAddressUpdate",
    "serviceDetails_teamsPhoneMobile_configuration_displayedCountryCode",
    "serviceDetails_teamsDirectRouting_enabled",
    "serviceDetails_zoomPhoneCloudPeering_enabled",
    "serviceDetails_azureOperatorCallProtection_enabled",
];

/// Columns whose cell holds several values, separated by `;`.
fn is_list(column: &str) -> bool {
    column.ends_with("_choosableCapabilities") || column.ends_with("_additionalUsages")
}

/// Columns whose cell is `true` or `false`.
fn is_flag(column: &str) -> bool {
    column.ends_with("_enabled") || column.ends_with("_allowTenantAddressUpdate")
}

/// Why a whole file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is not CSV: {0}")]
    NotCsv(String),
    #[error("the file has no header row")]
    Empty,
    #[error("unknown column '{0}'; the columns are: {columns}", columns = COLUMNS.join(", "))]
    UnknownColumn(String),
    #[error("column '{0}' appears twice")]
    DuplicateColumn(String),
    #[error("the file has no telephoneNumber column")]
    NoNumberColumn,
    #[error("the file has {0} rows; at most {MAX_ROWS} may be imported at once")]
    TooManyRows(usize),
}

/// A file as read: its columns and its rows (cells by column, empty for a value left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Reads a CSV file: a header row of known columns, then one row per number.
pub fn read(bytes: &[u8]) -> Result<Sheet, FileError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| FileError::NotCsv(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    if columns.iter().all(String::is_empty) {
        return Err(FileError::Empty);
    }
    let mut seen = HashSet::new();
    for column in &columns {
        if !COLUMNS.contains(&column.as_str()) {
            return Err(FileError::UnknownColumn(column.clone()));
        }
        if !seen.insert(column.as_str()) {
            return Err(FileError::DuplicateColumn(column.clone()));
        }
    }
    if !seen.contains("telephoneNumber") {
        return Err(FileError::NoNumberColumn);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| FileError::NotCsv(e.to_string()))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        rows.push(record.iter().map(str::to_string).collect());
        if rows.len() > MAX_ROWS {
            return Err(FileError::TooManyRows(rows.len()));
        }
    }
    Ok(Sheet { columns, rows })
}

/// Why one row was refused: its row (1 for the first after the header), the column at fault
/// when one is, the rule's code and words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowError {
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub code: String,
    pub message: String,
}

/// The column that an API error's JSON path names (`serviceDetails.teamsOperatorConnect.
/// configuration.choosableCapabilities[1]` is `serviceDetails_teamsOperatorConnect_
/// configuration_choosableCapabilities`).
fn column_of(path: &str) -> String {
    let mut column = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => column.push('_'),
            _ if depth == 0 => column.push(c),
            _ => {}
        }
    }
    column
}

/// The column an error's path names, or the column that says whether the service it names is
/// enabled (`serviceDetails.zoomPhoneCloudPeering` is `serviceDetails_zoomPhoneCloudPeering_enabled`).
fn column_at(path: &str) -> String {
    let column = column_of(path);
    if COLUMNS.contains(&column.as_str()) {
        return column;
    }
    let enabled = format!("{column}_enabled");
    if COLUMNS.contains(&enabled.as_str()) {
        enabled
    } else {
        column
    }
}

/// The row as the API's JSON body of a number.
fn row_json(columns: &[String], cells: &[String]) -> Value {
    let mut root = Map::new();
    for (column, cell) in columns.iter().zip(cells) {
        if cell.is_empty() {
            continue;
        }
        let value = if is_list(column) {
            Value::Array(
                cell.split(';')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_string()))
                    .collect(),
            )
        } else if is_flag(column) {
            match cell.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                // Left as text: the body's parser names the column and says a boolean is due.
                _ => Value::String(cell.clone()),
            }
        } else {
            Value::String(cell.clone())
        };
        let path: Vec<&str> = column.split('_').collect();
        let mut node = &mut root;
        for segment in &path[..path.len() - 1] {
            node = node
                .entry(segment.to_string())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("only objects on the way");
        }
        node.insert(path[path.len() - 1].to_string(), value);
    }
    Value::Object(root)
}

fn api_error(row: usize, error: ApiError) -> RowError {
    RowError {
        row,
        column: error.body.target.as_deref().map(column_at),
        code: error.body.code,
        message: error.body.message,
    }
}

fn domain_error(row: usize, error: &DomainError) -> RowError {
    RowError {
        row,
        column: error.target().as_deref().map(column_at),
        code: error.code().to_string(),
        message: error.to_string(),
    }
}

/// One row as checked: the number and its details, or why it is refused.
#[derive(Debug, Clone)]
pub struct Checked {
    pub row: usize,
    pub outcome: Result<(E164, NumberDetails), RowError>,
}

/// Why an import cannot go ahead at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("account '{0}' does not exist")]
    AccountNotFound(AccountName),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Checks every row against the rules the API applies, without writing anything: the body's
/// shape and values, the account (named in the row, it must be `account`), the rules between a
/// number's services and its account's, a number named twice in the file (the later rows are
/// refused), and numbers that belong to another account or are being deleted.
pub async fn check(
    commands: &CommandService,
    account: &AccountName,
    sheet: &Sheet,
) -> Result<Vec<Checked>, ImportError> {
    let loaded = commands.account(account).await?;
    let Some(state) = loaded.aggregate.state else {
        return Err(ImportError::AccountNotFound(account.clone()));
    };
    let mut checked: Vec<Checked> = sheet
        .rows
        .iter()
        .enumerate()
        .map(|(index, cells)| {
            let row = index + 1;
            let body = row_json(&sheet.columns, cells);
            let outcome = serde_path_to_error::deserialize::<_, NumberResource>(body)
                .map_err(|error| RowError {
                    row,
                    column: Some(column_at(&error.path().to_string())),
                    code: "InvalidValue".to_string(),
                    message: error.inner().to_string(),
                })
                .and_then(|resource| {
                    resource
                        .into_details(account, "")
                        .map_err(|e| api_error(row, e.into()))
                })
                .and_then(|(number, details)| {
                    details
                        .validate(&state.services)
                        .map(|()| (number, details))
                        .map_err(|e| domain_error(row, &e))
                });
            Checked { row, outcome }
        })
        .collect();

    let mut first_row: HashMap<E164, usize> = HashMap::new();
    for item in &mut checked {
        if let Ok((number, _)) = &item.outcome {
            if let Some(first) = first_row.get(number) {
                item.outcome = Err(RowError {
                    row: item.row,
                    column: Some("telephoneNumber".to_string()),
                    code: "DuplicateNumber".to_string(),
                    message: format!("{number} is already in row {first} of the file"),
                });
            } else {
                first_row.insert(number.clone(), item.row);
            }
        }
    }

    // Numbers that belong elsewhere or are on their way out, read a thousand at a time.
    let wanted: Vec<(usize, E164)> = checked
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.outcome.as_ref().ok().map(|(n, _)| (i, n.clone())))
        .collect();
    for chunk in wanted.chunks(1_000) {
        let ids: Vec<String> = chunk.iter().map(|(_, n)| n.to_string()).collect();
        let numbers = commands.store().load_many::<Number>(&ids).await?;
        for ((index, number), loaded) in chunk.iter().zip(numbers) {
            let Some(existing) = loaded.aggregate.state else {
                continue;
            };
            let error = if &existing.account != account {
                DomainError::NumberInAnotherAccount {
                    number: number.clone(),
                    owner: existing.account,
                }
            } else if existing.deleting {
                DomainError::NumberBeingDeleted(number.clone())
            } else {
                continue;
            };
            let row = checked[*index].row;
            checked[*index].outcome = Err(domain_error(row, &error));
        }
    }
    Ok(checked)
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum RowResult {
    /// The number was created.
    Created,
    /// The number existed in the account and now has the row's settings.
    Updated,
    /// Refused, when checked or when written; nothing of the row was written.
    Refused(RowError),
}

/// Writes the rows that passed the check, a hundred in one request; a row refused when written
/// (the account changed since the check, say) is answered on its own and the rest of its
/// hundred written without it. `progress` is told how many rows are done after each hundred.
/// Answers every row's result, in row order.
pub async fn import(
    commands: &CommandService,
    account: &AccountName,
    checked: Vec<Checked>,
    metadata: &EventMetadata,
    mut progress: impl FnMut(usize, usize),
) -> Vec<RowResult> {
    let total = checked.len();
    let mut results: Vec<Option<RowResult>> = vec![None; total];
    let mut pending: Vec<(usize, usize, E164, NumberDetails)> = Vec::new();
    for (index, item) in checked.into_iter().enumerate() {
        match item.outcome {
            Ok((number, details)) => pending.push((index, item.row, number, details)),
            Err(error) => results[index] = Some(RowResult::Refused(error)),
        }
    }
    let mut done = total - pending.len();
    progress(done, total);
    for chunk in pending.chunks(MAX_BATCH) {
        let mut batch: Vec<&(usize, usize, E164, NumberDetails)> = chunk.iter().collect();
        while !batch.is_empty() {
            let items = batch
                .iter()
                .map(|(_, _, number, details)| (number.clone(), details.clone()))
                .collect();
            match commands.upsert_numbers(account, items, metadata).await {
                Ok(outcomes) => {
                    for ((index, ..), outcome) in batch.iter().zip(outcomes) {
                        results[*index] = Some(if outcome.created {
                            RowResult::Created
                        } else {
                            RowResult::Updated
                        });
                    }
                    break;
                }
                Err(CommandError::BatchRefused(refusals)) => {
                    let refused: HashSet<usize> = refusals.iter().map(|r| r.index).collect();
                    for refusal in refusals {
                        let (index, row, ..) = batch[refusal.index];
                        results[*index] =
                            Some(RowResult::Refused(domain_error(*row, &refusal.error)));
                    }
                    batch = batch
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !refused.contains(i))
                        .map(|(_, item)| item)
                        .collect();
                }
                Err(error) => {
                    let error = crate::error::command_error(error, "numbers");
                    for (index, row, ..) in &batch {
                        results[*index] = Some(RowResult::Refused(api_error(*row, error.clone())));
                    }
                    break;
                }
            }
        }
        done += chunk.len();
        progress(done, total);
    }
    results
        .into_iter()
        .map(|r| r.expect("every row has a result"))
        .collect()
}

/// The file back with each row's outcome in four more columns: `result` (`created`,
/// `updated` or `refused`), `errorCode`, `errorColumn`, `errorMessage`.
pub fn results_csv(sheet: &Sheet, results: &[RowResult]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = sheet.columns.iter().map(String::as_str).collect();
    header.extend(["result", "errorCode", "errorColumn", "errorMessage"]);
    let _ = writer.write_record(&header);
    for (cells, result) in sheet.rows.iter().zip(results) {
        let mut record: Vec<&str> = cells.iter().map(String::as_str).collect();
        match result {
            RowResult::Created => record.extend(["created", "", "", ""]),
            RowResult::Updated => record.extend(["updated", "", "", ""]),
            RowResult::Refused(error) => record.extend([
                "refused",
                error.code.as_str(),
                error.column.as_deref().unwrap_or(""),
                error.message.as_str(),
            ]),
        }
        let _ = writer.write_record(&record);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Numbers as a file in the import's format: every column of [`COLUMNS`], one row each.
pub fn export_csv(numbers: &[NumberResource]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(COLUMNS);
    for number in numbers {
        let json = serde_json::to_value(number).unwrap_or(Value::Null);
        let record: Vec<String> = COLUMNS
            .iter()
            .map(|column| {
                let value = column
                    .split('_')
                    .try_fold(&json, |node, segment| node.get(segment));
                match value {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Bool(flag)) => flag.to_string(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(";"),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                }
            })
            .collect();
        let _ = writer.write_record(&record);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_known_columns_is_read_and_others_are_refused() {
        let sheet = read(
            b"\xEF\xBB\xBFtelephoneNumber,serviceDetails_teamsOperatorConnect_enabled\n\
              +15105850001,true\n\n +15105850002 ,false\n",
        )
        .expect("read");
        assert_eq!(sheet.columns.len(), 2);
        assert_eq!(
            sheet.rows,
            [
                vec!["+15105850001".to_string(), "true".to_string()],
                vec!["+15105850002".to_string(), "false".to_string()]
            ]
        );
        assert_eq!(
            read(b"telephoneNumber,phone\n1,2\n"),
            Err(FileError::UnknownColumn("phone".to_string()))
        );
        assert_eq!(read(b"accountName\nx\n"), Err(FileError::NoNumberColumn));
        assert_eq!(
            read(b"telephoneNumber,telephoneNumber\n1,2\n"),
            Err(FileError::DuplicateColumn("telephoneNumber".to_string()))
        );
        assert!(matches!(
            read(b"telephoneNumber,accountName\n1,2,3\n"),
            Err(FileError::NotCsv(_))
        ));
        let many = format!("telephoneNumber\n{}", "+15105850001\n".repeat(MAX_ROWS + 1));
        assert_eq!(
            read(many.as_bytes()),
            Err(FileError::TooManyRows(MAX_ROWS + 1))
        );
    }

    #[test]
    fn a_row_becomes_the_apis_json_body() {
        let columns: Vec<String> = [
            "telephoneNumber",
            "serviceDetails_teamsOperatorConnect_enabled",
            "serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities",
            "serviceDetails_teamsOperatorConnect_configuration_usage",
            "configuration_customSipHeader",
        ]
        .map(str::to_string)
        .into();
        let cells: Vec<String> = [
            "+15105850001",
            "TRUE",
            "InboundCalling; OutboundCalling;",
            "CallingUserAssignment",
            "",
        ]
        .map(str::to_string)
        .into();
        assert_eq!(
            row_json(&columns, &cells),
            serde_json::json!({
                "telephoneNumber": "+15105850001",
                "serviceDetails": {"teamsOperatorConnect": {
                    "enabled": true,
                    "configuration": {
                        "choosableCapabilities": ["InboundCalling", "OutboundCalling"],
                        "usage": "CallingUserAssignment"}}}
            })
        );
    }

    #[test]
    fn an_error_path_names_its_column() {
        assert_eq!(
            column_of("serviceDetails.teamsOperatorConnect.configuration.choosableCapabilities[1]"),
            "serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities"
        );
        assert_eq!(column_of("telephoneNumber"), "telephoneNumber");
        assert_eq!(
            column_at("serviceDetails.zoomPhoneCloudPeering"),
            "serviceDetails_zoomPhoneCloudPeering_enabled"
        );
        assert_eq!(column_at("serviceDetails"), "serviceDetails");
    }
}
