//! The demo notebook every new user finds on their first visit.

use crate::db::models::NotebookRow;
use crate::db::store::NewCell;

const DEMO_CELLS: &[(&str, &str)] = &[
    ("python", "x = 10"),
    ("python", "y = x + 5\nprint(f\"y is {y}\")"),
    (
        "python",
        "import pandas as pd\n\ndf = pd.DataFrame({\"n\": range(1, 6)})\ndf[\"value\"] = df[\"n\"] * y\ndf",
    ),
    (
        "python",
        "import matplotlib.pyplot as plt\n\nfig, ax = plt.subplots(figsize=(5, 3))\nax.plot(df[\"n\"], df[\"value\"], marker=\"o\")\nax.set_title(\"value by n\")\nfig",
    ),
    (
        "sql",
        "-- Without a database this runs on DuckDB in the kernel, over the DataFrame `df`;\n-- {x} is a bound parameter. The result is the DataFrame `df_1`.\nSELECT n, value, value * {x} AS scaled\nFROM df\nWHERE n >= 2",
    ),
];

/// The demo notebook row and its cells for `owner`.
pub fn demo_notebook(owner: &str) -> (NotebookRow, Vec<NewCell>) {
    let now = chrono::Utc::now().naive_utc();
    let row = NotebookRow {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: owner.to_string(),
        name: "Welcome: a reactive notebook".into(),
        db_conn_string: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    };
    let cells = DEMO_CELLS
        .iter()
        .map(|(cell_type, code)| NewCell {
            id: uuid::Uuid::new_v4().to_string(),
            cell_type: cell_type.to_string(),
            code: code.to_string(),
            result_name: (*cell_type == "sql").then(|| "df_1".to_string()),
        })
        .collect();
    (row, cells)
}
