// Mirrors migrations/ (the layout `diesel print-schema` produces). Keep in step with
// the SQL: `tests/schema_matches.rs` compares it against a migrated database.

diesel::table! {
    channel_state (channel) {
        channel -> Text,
        next_send_at -> Timestamptz,
        paused_until -> Nullable<Timestamptz>,
        pause_reason -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    customers (id) {
        id -> Int8,
        external_id -> Nullable<Text>,
        name -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    invoices (id) {
        id -> Int8,
        number -> Text,
        customer_id -> Int8,
        amount -> Int8,
        due_date -> Date,
        status -> Text,
        paid_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        queue -> Text,
        notification_id -> Int8,
        channel -> Text,
        attempts -> Int4,
        available_at -> Timestamptz,
        reserved_at -> Nullable<Timestamptz>,
        reserved_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Int8,
        invoice_id -> Int8,
        customer_id -> Int8,
        stage -> Text,
        channel -> Text,
        run_date -> Date,
        recipient -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        provider_message_id -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        due_date -> Nullable<Date>,
    }
}

diesel::table! {
    schedule_runs (id) {
        id -> Int8,
        run_date -> Date,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        host -> Text,
        dispatched -> Int4,
        skipped -> Int4,
        caught_up -> Int4,
    }
}

diesel::table! {
    workers (id) {
        id -> Text,
        hostname -> Text,
        pid -> Int4,
        queue -> Text,
        started_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        stopped_at -> Nullable<Timestamptz>,
        jobs_done -> Int8,
    }
}

diesel::joinable!(invoices -> customers (customer_id));
diesel::joinable!(jobs -> notifications (notification_id));
diesel::joinable!(notifications -> invoices (invoice_id));

diesel::allow_tables_to_appear_in_same_query!(
    channel_state,
    customers,
    invoices,
    jobs,
    notifications,
    schedule_runs,
    workers,
);

// The dashboard's tables (migration 2026-12-01-000012_dashboard); read and written
// with SQL in `ops::web` and `ops::audit`.

diesel::table! {
    web_users (id) {
        id -> Int8,
        name -> Text,
        role -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    web_sessions (token_digest) {
        token_digest -> Text,
        user_id -> Int8,
        csrf_token -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    web_login_failures (id) {
        id -> Int8,
        at -> Timestamptz,
        ip -> Text,
        username -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        actor -> Text,
        action -> Text,
        detail -> Text,
        ip -> Nullable<Text>,
    }
}
