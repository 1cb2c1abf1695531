//! The tables a SQL cell reads: names in FROM/JOIN that may be the notebook's DataFrames.
//!
//! Only single-identifier table names count (`df`, not `schema.df` or `read_csv(...)`), and not
//! the query's own CTE names. SQL the parser cannot read yields no tables: the cell then only
//! reads its `{name}` placeholders, and the engine reports any real syntax error when it runs.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{ObjectNamePart, Query, TableFactor, Visit, Visitor};
use sqlparser::dialect::DuckDbDialect;
use sqlparser::parser::Parser;

#[derive(Default)]
struct Tables {
    tables: BTreeSet<String>,
    ctes: BTreeSet<String>,
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
        {
            if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
                self.tables.insert(ident.value.clone());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Single-identifier table names the SQL reads (CTE names excluded); `positional_sql` has its
/// placeholders already rewritten to `$n` so it parses.
pub fn table_reads(positional_sql: &str) -> Vec<String> {
    let Ok(statements) = Parser::parse_sql(&DuckDbDialect {}, positional_sql) else {
        return Vec::new();
    };
    let mut tables = Tables::default();
    let _ = statements.visit(&mut tables);
    tables
        .tables
        .into_iter()
        .filter(|t| !tables.ctes.contains(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::table_reads;

    #[test]
    fn finds_from_and_join_tables() {
        assert_eq!(
            table_reads("SELECT * FROM df JOIN other o ON df.k = o.k WHERE x = $1"),
            vec!["df".to_string(), "other".to_string()]
        );
    }

    #[test]
    fn skips_ctes_qualified_names_functions_and_bad_sql() {
        assert_eq!(
            table_reads("WITH t AS (SELECT * FROM df) SELECT * FROM t, s.tab, read_csv('x')"),
            vec!["df".to_string()]
        );
        assert!(table_reads("SELEC nonsense FROM").is_empty());
    }
}
