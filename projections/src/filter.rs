//! The `filter` query parameter of the list operations: a small, documented subset of OData,
//! parsed into an AST against the fields of one resource and compiled to SQL whose values are
//! bind parameters, never pasted text — with one exception: a service's wire name compared with
//! `service` becomes a literal, taken from nmp's own list of services (`domain::Service`) and
//! never from the filter, so that the planner can use the partial index of that service.
//!
//! Grammar (keywords and field names are case-sensitive, as in OData):
//!
//! ```text
//! filter     = or
//! or         = and *( "or" and )
//! and        = unary *( "and" unary )
//! unary      = "not" unary / primary
//! primary    = "(" or ")" / "startswith" "(" field "," string ")" / field ( "eq" / "ne" ) value
//! value      = string / "true" / "false" / "null"
//! string     = "'" *( any character but "'" / "''" ) "'"      ; '' is one quote
//! field      = a field name of the resource, such as name or customerRelationship/status
//! ```
//!
//! `ne` is true for a missing value (`customSipHeader ne 'x'` matches numbers without one);
//! `eq null` / `ne null` test for a missing value. On `service`, which holds every service a
//! resource has enabled, `eq` means "has this service enabled", `ne` the opposite, and
//! `eq null` "has none". A filter is at most [`MAX_LENGTH`] characters and nests at most
//! [`MAX_DEPTH`] levels of parentheses and `not`. Positions in messages count characters from 1.

use std::fmt;

use domain::Service;

/// The longest filter accepted, in characters.
pub const MAX_LENGTH: usize = 1000;
/// The deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 16;

/// The resources that can be listed, each with its filterable fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Accounts,
    Numbers,
    RequestsForInformation,
    CivicAddresses,
}

/// How a field compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A text column (may be NULL).
    Text,
    /// A text array holding the wire names of the enabled services (or a consent's countries),
    /// as a set.
    Services,
    /// A boolean expression.
    Bool,
}

/// A filterable field: its name on the wire and the SQL expression it reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub sql: &'static str,
    pub kind: FieldKind,
}

const fn text(name: &'static str, sql: &'static str) -> Field {
    Field {
        name,
        sql,
        kind: FieldKind::Text,
    }
}

/// The account a consent's tenant is linked to (the first by name, as the single GET names it).
pub const CONSENT_ACCOUNT_SQL: &str = "(SELECT t.account_name FROM account_tenants t \
     WHERE t.tenant_id = c.tenant_id ORDER BY t.account_name LIMIT 1)";

const ACCOUNT_FIELDS: &[Field] = &[
    text("name", "a.name"),
    text("teamsTenantId", "a.teams_tenant_id"),
    Field {
        name: "service",
        sql: "a.services",
        kind: FieldKind::Services,
    },
    text("serviceProvisioningStatus", "a.sync_status"),
    Field {
        name: "hasNumbers",
        sql: "(a.number_count > 0)",
        kind: FieldKind::Bool,
    },
];

const NUMBER_FIELDS: &[Field] = &[
    text("telephoneNumber", "n.telephone_number"),
    text("accountName", "n.account_name"),
    Field {
        name: "service",
        sql: "n.services",
        kind: FieldKind::Services,
    },
    text("usage", "n.usage"),
    text("assignmentStatus", "n.assignment_status"),
    text("serviceProvisioningStatus", "n.sync_status"),
    text("customSipHeader", "n.custom_sip_header"),
];

const CONSENT_FIELDS: &[Field] = &[
    text("tenantId", "c.tenant_id"),
    text("accountName", CONSENT_ACCOUNT_SQL),
    text("status", "c.status"),
    text("customerRelationship/status", "c.relationship_status"),
    text("serviceProvisioningStatus", "c.sync_status"),
    // The countries the enterprise consented for, a set like an account's services:
    // `country eq 'US'` means "consented for the US".
    Field {
        name: "country",
        sql: "ARRAY(SELECT jsonb_array_elements_text(c.state->'report'->'countries'))",
        kind: FieldKind::Services,
    },
];

const CIVIC_ADDRESS_FIELDS: &[Field] = &[
    text("id", "c.civic_address_id"),
    text("country", "c.country"),
    text("validationStatus", "c.validation_status"),
];

impl Resource {
    pub fn fields(self) -> &'static [Field] {
        match self {
            Resource::Accounts => ACCOUNT_FIELDS,
            Resource::Numbers => NUMBER_FIELDS,
            Resource::RequestsForInformation => CONSENT_FIELDS,
            Resource::CivicAddresses => CIVIC_ADDRESS_FIELDS,
        }
    }

    /// How messages name the resource.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Accounts => "accounts",
            Resource::Numbers => "numbers",
            Resource::RequestsForInformation => "requests for information",
            Resource::CivicAddresses => "civic addresses",
        }
    }

    fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    fn field_names(self) -> String {
        self.fields()
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---- the AST -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Compare {
        field: &'static Field,
        op: Comparison,
        value: Value,
    },
    StartsWith {
        field: &'static Field,
        prefix: String,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// A parsed filter and the resource whose fields it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub resource: Resource,
    pub expr: Expr,
}

/// A refused filter: what is wrong, and where (characters from 1), for the API's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    pub position: Option<usize>,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

/// `what` went wrong at `position`, then what would be right (`hint`, may be empty).
fn error_at(position: usize, what: impl fmt::Display, hint: impl fmt::Display) -> FilterError {
    let hint = hint.to_string();
    let separator = if hint.is_empty() { "" } else { "; " };
    FilterError {
        message: format!("{what} at position {position}{separator}{hint}"),
        position: Some(position),
    }
}

// ---- lexing --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Number(String),
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(word) => format!("'{word}'"),
            Token::Str(text) => format!("the string '{}'", text.replace('\'', "''")),
            Token::Number(number) => format!("the number {number}"),
            Token::Open => "'('".to_string(),
            Token::Close => "')'".to_string(),
            Token::Comma => "','".to_string(),
            Token::End => "the end of the filter".to_string(),
        }
    }
}

/// A token and the position (characters from 1) where it starts.
type Spanned = (Token, usize);

fn lex(input: &str) -> Result<Vec<Spanned>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let position = i + 1;
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                tokens.push((Token::Open, position));
                i += 1;
            }
            ')' => {
                tokens.push((Token::Close, position));
                i += 1;
            }
            ',' => {
                tokens.push((Token::Comma, position));
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(error_at(
                                position,
                                "unterminated string",
                                "the quote opened there is never closed (write a quote \
                                 inside a string as '')",
                            ));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) if c.is_control() => {
                            return Err(error_at(
                                i + 1,
                                format!("unexpected control character U+{:04X}", *c as u32),
                                "",
                            ));
                        }
                        Some(c) => {
                            text.push(*c);
                            i += 1;
                        }
                    }
                }
                tokens.push((Token::Str(text), position));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '/')
                {
                    i += 1;
                }
                tokens.push((Token::Word(chars[start..i].iter().collect()), position));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push((Token::Number(chars[start..i].iter().collect()), position));
            }
            '"' => {
                return Err(error_at(
                    position,
                    "unexpected '\"'",
                    "strings take single quotes, as in name eq 'contoso'",
                ));
            }
            c if c.is_control() => {
                return Err(error_at(
                    position,
                    format!("unexpected control character U+{:04X}", c as u32),
                    "",
                ));
            }
            c => {
                return Err(error_at(
                    position,
                    format!("unexpected character '{c}'"),
                    "",
                ));
            }
        }
    }
    tokens.push((Token::End, chars.len() + 1));
    Ok(tokens)
}

// ---- parsing -------------------------------------------------------------------------------

const COMPARISONS: &str = "eq, ne";
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "gt", "ge", "lt", "le", "has", "in", "add", "sub", "mul", "div", "mod",
];
const KEYWORDS: &[&str] = &["and", "or", "not", "eq", "ne", "true", "false", "null"];

/// Parses `input` against the fields of `resource`.
pub fn parse(input: &str, resource: Resource) -> Result<Filter, FilterError> {
    let length = input.chars().count();
    if length > MAX_LENGTH {
        return Err(FilterError {
            message: format!("the filter is {length} characters long; at most {MAX_LENGTH}"),
            position: None,
        });
    }
    let tokens = lex(input)?;
    if tokens.len() == 1 {
        return Err(FilterError {
            message: "the filter is empty; leave it out to list everything".to_string(),
            position: None,
        });
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        resource,
        depth: 0,
    };
    let expr = parser.or()?;
    match parser.peek() {
        (Token::End, _) => Ok(Filter { resource, expr }),
        (token, position) => Err(error_at(
            *position,
            format!("unexpected {}", token.describe()),
            "expected 'and', 'or' or the end of the filter",
        )),
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
    resource: Resource,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Spanned {
        // The list always ends with Token::End, which is never consumed.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(&self.peek().0, Token::Word(w) if w == word)
    }

    fn advance(&mut self) -> Spanned {
        let token = self.peek().clone();
        if token.0 != Token::End {
            self.next += 1;
        }
        token
    }

    fn expect(&mut self, wanted: Token, what: &str) -> Result<(), FilterError> {
        let (token, position) = self.advance();
        if token == wanted {
            Ok(())
        } else {
            Err(error_at(
                position,
                format!("unexpected {}", token.describe()),
                format!("expected {what}"),
            ))
        }
    }

    fn deeper(&mut self, position: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error_at(
                position,
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
                "",
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and()?];
        while self.peek_word("or") {
            self.advance();
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.unary()?];
        while self.peek_word("and") {
            self.advance();
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek_word("not") {
            let (_, position) = self.advance();
            self.deeper(position)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let (token, position) = self.advance();
        match token {
            Token::Open => {
                self.deeper(position)?;
                let inner = self.or()?;
                self.expect(Token::Close, "')'")?;
                self.depth -= 1;
                Ok(inner)
            }
            Token::Word(word) if self.peek().0 == Token::Open => self.function(&word, position),
            Token::Word(word) if !KEYWORDS.contains(&word.as_str()) => {
                let field = self.field(&word, position)?;
                self.comparison(field)
            }
            other => Err(error_at(
                position,
                format!("unexpected {}", other.describe()),
                format!(
                    "expected a field ({}), 'not', '(' or startswith(",
                    self.resource.field_names()
                ),
            )),
        }
    }

    fn field(&self, name: &str, position: usize) -> Result<&'static Field, FilterError> {
        self.resource.field(name).ok_or_else(|| {
            error_at(
                position,
                format!("unknown field '{name}'"),
                format!(
                    "the fields of {} are: {}",
                    self.resource.plural(),
                    self.resource.field_names()
                ),
            )
        })
    }

    fn function(&mut self, name: &str, position: usize) -> Result<Expr, FilterError> {
        if name != "startswith" {
            return Err(error_at(
                position,
                format!("unsupported function '{name}'"),
                "the only function is startswith",
            ));
        }
        self.expect(Token::Open, "'('")?;
        let (token, at) = self.advance();
        let field = match token {
            Token::Word(word) => self.field(&word, at)?,
            other => {
                return Err(error_at(
                    at,
                    format!("unexpected {}", other.describe()),
                    "startswith takes a field first",
                ));
            }
        };
        if field.kind == FieldKind::Bool {
            return Err(error_at(
                at,
                format!("startswith needs a text field, not {}", field.name),
                format!("{} is true or false", field.name),
            ));
        }
        self.expect(Token::Comma, "',' after the field of startswith")?;
        let (token, at) = self.advance();
        let prefix = match token {
            Token::Str(text) => text,
            other => {
                return Err(error_at(
                    at,
                    format!("unexpected {}", other.describe()),
                    "startswith takes a quoted string second",
                ));
            }
        };
        self.expect(Token::Close, "')' closing startswith")?;
        Ok(Expr::StartsWith { field, prefix })
    }

    fn comparison(&mut self, field: &'static Field) -> Result<Expr, FilterError> {
        let (token, position) = self.advance();
        let op = match &token {
            Token::Word(w) if w == "eq" => Comparison::Eq,
            Token::Word(w) if w == "ne" => Comparison::Ne,
            Token::Word(w) if UNSUPPORTED_OPERATORS.contains(&w.as_str()) => {
                return Err(error_at(
                    position,
                    format!("unsupported operator '{w}'"),
                    format!("supported: {COMPARISONS}"),
                ));
            }
            other => {
                return Err(error_at(
                    position,
                    format!(
                        "unexpected {} after the field {}",
                        other.describe(),
                        field.name
                    ),
                    format!("expected an operator ({COMPARISONS})"),
                ));
            }
        };
        let (token, position) = self.advance();
        let value = match token {
            Token::Str(text) => Value::Text(text),
            Token::Word(w) if w == "true" => Value::Bool(true),
            Token::Word(w) if w == "false" => Value::Bool(false),
            Token::Word(w) if w == "null" => Value::Null,
            other => {
                return Err(error_at(
                    position,
                    format!("unexpected {}", other.describe()),
                    "a value is a quoted string, true, false or null",
                ));
            }
        };
        match (&value, field.kind) {
            (Value::Bool(_), FieldKind::Text | FieldKind::Services) => Err(error_at(
                position,
                format!("a boolean for the text field {}", field.name),
                "compare it with a quoted string",
            )),
            (Value::Text(_), FieldKind::Bool) => Err(error_at(
                position,
                format!("a string for the boolean field {}", field.name),
                "compare it with true or false",
            )),
            _ => Ok(Expr::Compare { field, op, value }),
        }
    }
}

// ---- compiling -----------------------------------------------------------------------------

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// SQL text with `$n` placeholders and the values they stand for, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    /// Adds a value and answers its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }
}

/// Compiles `expr` into a boolean SQL condition, binding its values after those already in
/// `sql`. Only field expressions from the resource's table and placeholders reach the text.
pub fn compile(expr: &Expr, sql: &mut Sql) -> String {
    match expr {
        Expr::Compare { field, op, value } => compare(field, *op, value, sql),
        Expr::StartsWith { field, prefix } => {
            let at = sql.bind(Param::Text(prefix.clone()));
            match field.kind {
                FieldKind::Services => format!(
                    "EXISTS (SELECT 1 FROM unnest({}) AS s(v) WHERE starts_with(s.v, {at}))",
                    field.sql
                ),
                _ if field.sql == "n.telephone_number" && is_number_prefix(prefix) => {
                    number_prefix(field.sql, prefix, &at, sql)
                }
                _ => format!("coalesce(starts_with({}, {at}), false)", field.sql),
            }
        }
        Expr::And(terms) => join(terms, " AND ", sql),
        Expr::Or(terms) => join(terms, " OR ", sql),
        Expr::Not(inner) => format!("NOT {}", compile(inner, sql)),
    }
}

/// `+` and digits only: the start of a telephone number.
fn is_number_prefix(prefix: &str) -> bool {
    prefix
        .strip_prefix('+')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The first digits of a telephone number as a range of the column, which its btree index
/// answers (`starts_with` alone makes PostgreSQL read every live number: 500,000 rows for
/// `+44` among a million). The range's upper end is the prefix with its last digit raised
/// (`+4420` → `+4421`, `+4429` → `+443`); a prefix of nines has none. Telephone numbers are `+`
/// and digits, which every collation orders by their digits, so the range holds exactly the
/// numbers that start with the prefix; `starts_with` stays as the condition of record.
fn number_prefix(column: &str, prefix: &str, at: &str, sql: &mut Sql) -> String {
    let mut upper = prefix.as_bytes().to_vec();
    while let Some(last) = upper.pop() {
        if last.is_ascii_digit() && last != b'9' {
            upper.push(last + 1);
            break;
        }
        if last == b'+' {
            upper.clear();
        }
    }
    let from = sql.bind(Param::Text(prefix.to_string()));
    let below = if upper.is_empty() {
        String::new()
    } else {
        let to = sql.bind(Param::Text(String::from_utf8(upper).unwrap_or_default()));
        format!(" AND {column} < {to}")
    };
    format!("({column} >= {from}{below} AND starts_with({column}, {at}))")
}

fn join(terms: &[Expr], with: &str, sql: &mut Sql) -> String {
    let parts: Vec<String> = terms.iter().map(|t| compile(t, sql)).collect();
    format!("({})", parts.join(with))
}

fn compare(field: &Field, op: Comparison, value: &Value, sql: &mut Sql) -> String {
    let column = field.sql;
    match (field.kind, value) {
        (FieldKind::Services, Value::Null) => match op {
            Comparison::Eq => format!("(cardinality({column}) = 0)"),
            Comparison::Ne => format!("(cardinality({column}) > 0)"),
        },
        (FieldKind::Services, value) => {
            let at = match value {
                Value::Text(name) => service_literal(name),
                _ => None,
            }
            .unwrap_or_else(|| sql.bind(param(value)));
            match op {
                Comparison::Eq => format!("({at} = ANY({column}))"),
                Comparison::Ne => format!("(NOT ({at} = ANY({column})))"),
            }
        }
        (_, Value::Null) => match op {
            Comparison::Eq => format!("({column} IS NULL)"),
            Comparison::Ne => format!("({column} IS NOT NULL)"),
        },
        (_, value) => {
            let at = sql.bind(param(value));
            match op {
                Comparison::Eq => format!("({column} = {at})"),
                Comparison::Ne => format!("({column} IS DISTINCT FROM {at})"),
            }
        }
    }
}

/// `name` as an SQL string literal when it is the wire name of one of nmp's services, for the
/// planner to match `'<name>' = ANY(services)` with that service's partial index (a bind
/// parameter would hide which index applies). The literal is built from `Service::wire_name`, a
/// constant of nmp's, never from the filter's text; wire names are ASCII letters only, so it
/// needs no quoting. Any other name stays a bind parameter (it matches no row).
fn service_literal(name: &str) -> Option<String> {
    let known = Service::ALL
        .into_iter()
        .map(Service::wire_name)
        .find(|wire| *wire == name)?;
    debug_assert!(known.chars().all(|c| c.is_ascii_alphabetic()));
    Some(format!("'{known}'"))
}

fn param(value: &Value) -> Param {
    match value {
        Value::Text(text) => Param::Text(text.clone()),
        Value::Bool(b) => Param::Bool(*b),
        Value::Null => Param::Text(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(input: &str, resource: Resource) -> Sql {
        let filter = parse(input, resource).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(filter.resource, resource);
        let mut sql = Sql::default();
        sql.text = compile(&filter.expr, &mut sql);
        sql
    }

    fn refusal(input: &str, resource: Resource) -> String {
        parse(input, resource)
            .err()
            .unwrap_or_else(|| panic!("{input} was accepted"))
            .message
    }

    fn texts(values: &[&str]) -> Vec<Param> {
        values.iter().map(|v| Param::Text(v.to_string())).collect()
    }

    #[test]
    fn comparisons_compile_to_placeholders() {
        let sql = sql_of("name eq 'contoso'", Resource::Accounts);
        assert_eq!(sql.text, "(a.name = $1)");
        assert_eq!(sql.params, texts(&["contoso"]));

        let sql = sql_of("customSipHeader ne 'x'", Resource::Numbers);
        assert_eq!(sql.text, "(n.custom_sip_header IS DISTINCT FROM $1)");

        let sql = sql_of("customSipHeader eq null", Resource::Numbers);
        assert_eq!(sql.text, "(n.custom_sip_header IS NULL)");
        assert!(sql.params.is_empty());

        let sql = sql_of("hasNumbers eq true", Resource::Accounts);
        assert_eq!(sql.text, "((a.number_count > 0) = $1)");
        assert_eq!(sql.params, [Param::Bool(true)]);
    }

    #[test]
    fn service_tests_membership_of_the_enabled_services() {
        let sql = sql_of("service eq 'teamsOperatorConnect'", Resource::Accounts);
        assert_eq!(sql.text, "('teamsOperatorConnect' = ANY(a.services))");
        assert!(sql.params.is_empty());
        let sql = sql_of("service ne 'teamsPhoneMobile'", Resource::Numbers);
        assert_eq!(sql.text, "(NOT ('teamsPhoneMobile' = ANY(n.services)))");
        // A name that is no service stays a value.
        let sql = sql_of("service eq 'teamsoperatorconnect'", Resource::Numbers);
        assert_eq!(sql.text, "($1 = ANY(n.services))");
        assert_eq!(sql.params, texts(&["teamsoperatorconnect"]));
        let sql = sql_of("startswith(service, 'teams')", Resource::Numbers);
        assert_eq!(
            sql.text,
            "EXISTS (SELECT 1 FROM unnest(n.services) AS s(v) WHERE starts_with(s.v, $1))"
        );
        let sql = sql_of("service eq null", Resource::Accounts);
        assert_eq!(sql.text, "(cardinality(a.services) = 0)");
    }

    #[test]
    fn only_nmps_own_service_names_become_literals() {
        // Every service's wire name is letters only: inlined between quotes, it cannot end the
        // literal or carry SQL.
        for service in Service::ALL {
            let name = service.wire_name();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic()),
                "{name}"
            );
            let sql = sql_of(&format!("service eq '{name}'"), Resource::Numbers);
            assert_eq!(sql.text, format!("('{name}' = ANY(n.services))"));
            assert!(sql.params.is_empty());
        }
        // Anything else — near misses, quotes, injections — is a bind parameter, and the text
        // holds only the placeholder, whatever the value; a value no filter may hold is refused.
        for (value, refused) in [
            ("zoomPhoneCloudPeering ", None),
            (" zoomPhoneCloudPeering", None),
            ("zoomPhoneCloudPeering'; DROP TABLE events; --", None),
            ("'zoomPhoneCloudPeering'", None),
            ("ZoomPhoneCloudPeering", None),
            (
                "zoomPhoneCloudPeering\u{0}",
                Some("unexpected control character U+0000 at position 34"),
            ),
            ("", None),
        ] {
            let filter = format!("service eq '{}'", value.replace('\'', "''"));
            match (parse(&filter, Resource::Numbers), refused) {
                (Ok(parsed), None) => {
                    let mut sql = Sql::default();
                    let text = compile(&parsed.expr, &mut sql);
                    assert_eq!(text, "($1 = ANY(n.services))", "{filter}");
                    assert_eq!(sql.params, texts(&[value]), "{filter}");
                }
                (Err(error), Some(expected)) => assert_eq!(error.message, expected, "{filter}"),
                (Ok(parsed), Some(expected)) => {
                    panic!("{filter:?} was accepted as {parsed:?}, expected: {expected}")
                }
                (Err(error), None) => panic!("{filter:?} was refused: {}", error.message),
            }
        }
        // A literal service and bound values side by side keep their placeholders in order.
        let sql = sql_of(
            "usage eq 'a' and service eq 'zoomPhoneCloudPeering' and accountName eq 'b'",
            Resource::Numbers,
        );
        assert_eq!(
            sql.text,
            "((n.usage = $1) AND ('zoomPhoneCloudPeering' = ANY(n.services)) AND (n.account_name = $2))"
        );
        assert_eq!(sql.params, texts(&["a", "b"]));
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_group() {
        let sql = sql_of(
            "usage eq 'a' or usage eq 'b' and not accountName eq 'c'",
            Resource::Numbers,
        );
        assert_eq!(
            sql.text,
            "((n.usage = $1) OR ((n.usage = $2) AND NOT (n.account_name = $3)))"
        );
        assert_eq!(sql.params, texts(&["a", "b", "c"]));

        let sql = sql_of(
            "(usage eq 'a' or usage eq 'b') and startswith(telephoneNumber, '+1510')",
            Resource::Numbers,
        );
        assert_eq!(
            sql.text,
            "(((n.usage = $1) OR (n.usage = $2)) AND (n.telephone_number >= $4 AND n.telephone_number < $5 AND starts_with(n.telephone_number, $3)))"
        );
        assert_eq!(sql.params, texts(&["a", "b", "+1510", "+1510", "+1511"]));
        // The first digits of a number are a range of the column; the range's end carries.
        for (prefix, end) in [("+4429", Some("+443")), ("+1", Some("+2")), ("+99", None)] {
            let sql = sql_of(
                &format!("startswith(telephoneNumber, '{prefix}')"),
                Resource::Numbers,
            );
            match end {
                Some(end) => assert_eq!(sql.params, texts(&[prefix, prefix, end]), "{prefix}"),
                None => {
                    assert_eq!(sql.params, texts(&[prefix, prefix]), "{prefix}");
                    assert!(!sql.text.contains(" < "), "{}", sql.text);
                }
            }
        }
        // Anything else than a number's first digits stays a plain starts_with.
        let sql = sql_of("startswith(telephoneNumber, '44')", Resource::Numbers);
        assert_eq!(
            sql.text,
            "coalesce(starts_with(n.telephone_number, $1), false)"
        );
        assert_eq!(
            parse("not not name eq 'x'", Resource::Accounts)
                .unwrap()
                .expr,
            Expr::Not(Box::new(Expr::Not(Box::new(Expr::Compare {
                field: &ACCOUNT_FIELDS[0],
                op: Comparison::Eq,
                value: Value::Text("x".to_string()),
            }))))
        );
    }

    #[test]
    fn fields_with_a_path_and_of_every_resource() {
        let sql = sql_of(
            "customerRelationship/status eq 'ConsentAcknowledged' and status ne 'removed'",
            Resource::RequestsForInformation,
        );
        assert_eq!(
            sql.text,
            "((c.relationship_status = $1) AND (c.status IS DISTINCT FROM $2))"
        );
        let sql = sql_of("accountName eq 'contoso'", Resource::RequestsForInformation);
        assert!(sql.text.contains("account_tenants"), "{}", sql.text);
        let sql = sql_of("country eq 'GB'", Resource::RequestsForInformation);
        assert_eq!(
            sql.text,
            "($1 = ANY(ARRAY(SELECT jsonb_array_elements_text(c.state->'report'->'countries'))))"
        );
        assert_eq!(sql.params, texts(&["GB"]));
        let sql = sql_of(
            "country eq 'US' and validationStatus eq 'validated'",
            Resource::CivicAddresses,
        );
        assert_eq!(
            sql.text,
            "((c.country = $1) AND (c.validation_status = $2))"
        );
    }

    #[test]
    fn quotes_are_doubled_inside_strings_and_values_stay_values() {
        let sql = sql_of("name eq 'O''Brien'", Resource::Accounts);
        assert_eq!(sql.params, texts(&["O'Brien"]));
        let sql = sql_of("name eq ''", Resource::Accounts);
        assert_eq!(sql.params, texts(&[""]));

        // Injection attempts are values: the SQL text holds placeholders only.
        for (input, value) in [
            (
                "name eq '''; DROP TABLE events; --'",
                "'; DROP TABLE events; --",
            ),
            ("name eq 'x'' OR ''1''=''1'", "x' OR '1'='1"),
            ("name eq '$1'", "$1"),
        ] {
            let filter = parse(input, Resource::Accounts)
                .unwrap_or_else(|e| panic!("{input} was refused: {}", e.message));
            let mut sql = Sql::default();
            let text = compile(&filter.expr, &mut sql);
            assert_eq!(text, "(a.name = $1)", "{input}");
            assert_eq!(sql.params, texts(&[value]), "{input}");
        }
        // A backslash escapes nothing: the quote after it ends the string, and what follows is
        // not a filter.
        let message = refusal("name eq 'a\\' or 1=1 --'", Resource::Accounts);
        assert_eq!(message, "unexpected character '=' at position 18");
        let message = refusal("name eq 'x'; DROP TABLE read_accounts", Resource::Accounts);
        assert!(
            message.contains("unexpected character ';' at position 12"),
            "{message}"
        );
    }

    #[test]
    fn field_names_cannot_smuggle_sql() {
        let message = refusal("a.name eq 'x'", Resource::Accounts);
        assert!(message.contains("unexpected character '.'"), "{message}");
        let message = refusal("name/**/eq 'x'", Resource::Accounts);
        assert!(message.contains("unexpected character '*'"), "{message}");
        let message = refusal("name/ eq 'x'", Resource::Accounts);
        assert!(message.contains("unknown field 'name/'"), "{message}");
        let message = refusal("deleted eq true", Resource::Accounts);
        assert!(message.contains("unknown field 'deleted'"), "{message}");
        let message = refusal("state eq 'x'", Resource::Numbers);
        assert!(message.contains("unknown field 'state'"), "{message}");
    }

    #[test]
    fn unknown_fields_name_the_allowed_ones() {
        let message = refusal("nmae eq 'contoso'", Resource::Accounts);
        assert_eq!(
            message,
            "unknown field 'nmae' at position 1; the fields of accounts are: name, teamsTenantId, \
             service, serviceProvisioningStatus, hasNumbers"
        );
        let message = refusal("usage eq 'x'", Resource::Accounts);
        assert!(message.contains("unknown field 'usage'"), "{message}");
        let message = refusal("startswith(nope, 'x')", Resource::Numbers);
        assert!(
            message.contains("unknown field 'nope' at position 12"),
            "{message}"
        );
    }

    #[test]
    fn unsupported_operators_and_functions_are_named() {
        let message = refusal("name gt 'a'", Resource::Accounts);
        assert_eq!(
            message,
            "unsupported operator 'gt' at position 6; supported: eq, ne"
        );
        let message = refusal("endswith(name, 'a')", Resource::Accounts);
        assert!(
            message.contains("unsupported function 'endswith'"),
            "{message}"
        );
        let message = refusal("name = 'a'", Resource::Accounts);
        assert!(
            message.contains("unexpected character '=' at position 6"),
            "{message}"
        );
        let message = refusal("name like 'a'", Resource::Accounts);
        assert!(
            message.contains("unexpected 'like' after the field name at position 6"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        let message = refusal("name eq 'contoso", Resource::Accounts);
        assert_eq!(
            message,
            "unterminated string at position 9; the quote opened there is never closed (write a \
             quote inside a string as '')"
        );
        let message = refusal("name eq 'a' and", Resource::Accounts);
        assert!(
            message.contains("unexpected the end of the filter at position 16"),
            "{message}"
        );
        let message = refusal("(name eq 'a'", Resource::Accounts);
        assert!(message.contains("expected ')'"), "{message}");
        let message = refusal("name eq 'a')", Resource::Accounts);
        assert!(
            message.contains("unexpected ')' at position 12"),
            "{message}"
        );
        let message = refusal("name eq 'a' name eq 'b'", Resource::Accounts);
        assert!(message.contains("expected 'and', 'or'"), "{message}");
        let message = refusal("name eq \"a\"", Resource::Accounts);
        assert!(message.contains("single quotes"), "{message}");
        let message = refusal("name eq 5", Resource::Accounts);
        assert!(message.contains("the number 5"), "{message}");
        let message = refusal("name eq contoso", Resource::Accounts);
        assert!(message.contains("a value is a quoted string"), "{message}");
        let message = refusal("   ", Resource::Accounts);
        assert!(message.contains("empty"), "{message}");
        let message = refusal("and", Resource::Accounts);
        assert!(message.contains("expected a field"), "{message}");
        let message = refusal("name eq 'a\u{0}b'", Resource::Accounts);
        assert!(message.contains("control character U+0000"), "{message}");
    }

    #[test]
    fn values_must_fit_the_field() {
        let message = refusal("name eq true", Resource::Accounts);
        assert!(
            message.contains("a boolean for the text field name"),
            "{message}"
        );
        let message = refusal("hasNumbers eq 'yes'", Resource::Accounts);
        assert!(
            message.contains("a string for the boolean field hasNumbers"),
            "{message}"
        );
        let message = refusal("startswith(hasNumbers, 't')", Resource::Accounts);
        assert!(message.contains("needs a text field"), "{message}");
        let message = refusal("startswith(name, true)", Resource::Accounts);
        assert!(message.contains("quoted string second"), "{message}");
    }

    #[test]
    fn length_and_depth_are_limited() {
        let long = format!("name eq '{}'", "x".repeat(MAX_LENGTH));
        let message = refusal(&long, Resource::Accounts);
        assert!(message.contains("at most 1000"), "{message}");

        let nested =
            |depth: usize| format!("{}name eq 'x'{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH), Resource::Accounts).is_ok());
        let message = refusal(&nested(MAX_DEPTH + 1), Resource::Accounts);
        assert!(message.contains("deeper than 16"), "{message}");
        let nots = format!("{}name eq 'x'", "not ".repeat(MAX_DEPTH + 1));
        assert!(refusal(&nots, Resource::Accounts).contains("deeper than 16"));
        // Deeply nested input is refused quickly, not by exhausting the stack.
        let hostile = "(".repeat(MAX_LENGTH);
        assert!(refusal(&hostile, Resource::Accounts).contains("deeper than 16"));

        // A long flat chain is fine and compiles without recursion per term.
        let chain = vec!["usage eq 'x'"; 60].join(" or ");
        let sql = sql_of(&chain, Resource::Numbers);
        assert_eq!(sql.params.len(), 60);
    }

    #[test]
    fn non_ascii_text_is_a_value_and_positions_count_characters() {
        let sql = sql_of("name eq 'Zürich ☎'", Resource::Accounts);
        assert_eq!(sql.params, texts(&["Zürich ☎"]));
        let message = refusal("name eq 'ü' or ü", Resource::Accounts);
        assert!(
            message.contains("unexpected character 'ü' at position 16"),
            "{message}"
        );
    }
}
