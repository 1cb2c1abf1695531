// @generated-style diesel schema, identical for PostgreSQL and SQLite.

diesel::table! {
    users (id) {
        id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    notebooks (id) {
        id -> Text,
        owner_id -> Text,
        name -> Text,
        db_conn_string -> Nullable<Text>,
        revision -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        lazy -> Bool,
    }
}

diesel::table! {
    cells (id) {
        id -> Text,
        notebook_id -> Text,
        position -> Integer,
        cell_type -> Text,
        code -> Text,
        code_revision -> BigInt,
        status -> Text,
        stdout -> Text,
        error -> Nullable<Text>,
        outputs -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        result_name -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        created_at -> Timestamp,
        user_id -> Text,
        notebook_id -> Text,
        tool -> Text,
        input -> Text,
        outcome -> Text,
        ok -> Bool,
    }
}

diesel::table! {
    notebook_packages (notebook_id, name) {
        notebook_id -> Text,
        name -> Text,
        version -> Nullable<Text>,
        state -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    notebook_members (notebook_id, user_id) {
        notebook_id -> Text,
        user_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    notebook_invites (id) {
        id -> Text,
        code_hash -> Text,
        notebook_id -> Text,
        role -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked -> Bool,
    }
}

diesel::table! {
    notebook_leases (notebook_id) {
        notebook_id -> Text,
        instance_id -> Text,
        instance_url -> Text,
        epoch -> BigInt,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    schedules (id) {
        id -> Text,
        notebook_id -> Text,
        cron -> Text,
        timezone -> Text,
        next_fire_at -> Timestamp,
        created_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::table! {
    runs (id) {
        id -> Text,
        notebook_id -> Text,
        schedule_id -> Nullable<Text>,
        trigger_kind -> Text,
        scheduled_for -> Nullable<Timestamp>,
        status -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        failed_cell -> Nullable<Text>,
        detail -> Nullable<Text>,
        snapshot -> Nullable<Text>,
        heartbeat_at -> Timestamp,
    }
}

diesel::joinable!(cells -> notebooks (notebook_id));
diesel::joinable!(notebook_members -> notebooks (notebook_id));
diesel::joinable!(notebook_invites -> notebooks (notebook_id));
diesel::joinable!(notebook_packages -> notebooks (notebook_id));
diesel::joinable!(audit_log -> notebooks (notebook_id));
diesel::joinable!(schedules -> notebooks (notebook_id));
diesel::joinable!(runs -> notebooks (notebook_id));
diesel::joinable!(runs -> schedules (schedule_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    notebooks,
    cells,
    audit_log,
    notebook_packages,
    notebook_members,
    notebook_invites,
    notebook_leases,
    schedules,
    runs
);
