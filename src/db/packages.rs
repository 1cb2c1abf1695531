//! Queries over `notebook_packages`: the packages each notebook installs into its layer.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::fence::FenceCheck;
use super::models::PackageRow;
use super::schema::notebook_packages;
use super::store::{Store, StoreError};
use crate::db_run;

impl Store {
    /// A notebook's packages, oldest first.
    pub async fn list_packages(&self, notebook_id: &str) -> Result<Vec<PackageRow>, StoreError> {
        let mut conn = self.db.get().await?;
        let rows = db_run!(conn, |c| {
            notebook_packages::table
                .filter(notebook_packages::notebook_id.eq(notebook_id))
                .order((notebook_packages::created_at, notebook_packages::name))
                .select(PackageRow::as_select())
                .load(c)
                .await
        })?;
        Ok(rows)
    }

    /// Records a package's requested version and state (inserted, or replacing the old entry).
    pub async fn save_package(
        &self,
        notebook_id: &str,
        name: &str,
        version: Option<&str>,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Utc::now().naive_utc();
        let row = PackageRow {
            notebook_id: notebook_id.to_string(),
            name: name.to_string(),
            version: version.map(String::from),
            state: state.to_string(),
            error: error.map(String::from),
            created_at: now,
            updated_at: now,
        };
        let fence = self.fence.as_ref();
        let row = &row;
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    diesel::insert_into(notebook_packages::table)
                        .values(row)
                        .on_conflict((notebook_packages::notebook_id, notebook_packages::name))
                        .do_update()
                        .set((
                            notebook_packages::version.eq(&row.version),
                            notebook_packages::state.eq(&row.state),
                            notebook_packages::error.eq(&row.error),
                            notebook_packages::updated_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                    Ok(())
                }
                .scope_boxed()
            })
            .await
        })?;
        Ok(())
    }
}
