// Mirrors migrations/ in the layout `diesel print-schema` produces: after changing a
// migration, regenerate it with `diesel print-schema` against a migrated database.

diesel::table! {
    channel_state (channel) {
        channel -> Text,
        next_send_at -> Timestamptz,
        paused_until -> Nullable<Timestamptz>,
        pause_reason -> Nullable<Text>,
        updated_at -> Timestamptz,
        device_event_at -> Nullable<Timestamptz>,
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
        is_test -> Bool,
        from_billing -> Bool,
        payment_url -> Nullable<Text>,
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
        invoice_id -> Nullable<Int8>,
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
        reply_id -> Nullable<Int8>,
        body -> Nullable<Text>,
        link_error -> Nullable<Text>,
        group_id -> Nullable<Int8>,
    }
}

diesel::table! {
    opt_outs (customer_id, channel) {
        customer_id -> Int8,
        channel -> Text,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    pauses (id) {
        id -> Int8,
        customer_id -> Nullable<Int8>,
        invoice_id -> Nullable<Int8>,
        starts_on -> Date,
        until -> Date,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    delivery_states (id) {
        id -> Int8,
        provider_message_id -> Text,
        notification_id -> Nullable<Int8>,
        state -> Text,
        state_id -> Nullable<Text>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    whatsapp_replies (id) {
        id -> Int8,
        dedup_key -> Text,
        device -> Nullable<Text>,
        sender -> Text,
        sender_name -> Nullable<Text>,
        message -> Text,
        received_at -> Timestamptz,
        customer_id -> Nullable<Int8>,
        intent -> Text,
        flagged -> Bool,
        handled_at -> Nullable<Timestamptz>,
        handled_by -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    payment_links (invoice_id, gateway) {
        invoice_id -> Int8,
        gateway -> Text,
        order_id -> Text,
        reference -> Text,
        url -> Text,
        expires_at -> Timestamptz,
        generation -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        gateway -> Text,
        reference -> Text,
        order_id -> Text,
        invoice_id -> Nullable<Int8>,
        amount -> Int8,
        currency -> Text,
        paid_at -> Timestamptz,
        raw -> Jsonb,
        flag -> Nullable<Text>,
        received_at -> Timestamptz,
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
        backfill -> Bool,
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
diesel::joinable!(payment_links -> invoices (invoice_id));
diesel::joinable!(payments -> invoices (invoice_id));

diesel::allow_tables_to_appear_in_same_query!(
    channel_state,
    customers,
    delivery_states,
    invoices,
    jobs,
    notifications,
    opt_outs,
    pauses,
    payment_links,
    payments,
    schedule_runs,
    whatsapp_replies,
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

diesel::table! {
    paid_events (invoice_id) {
        invoice_id -> Int8,
        created_at -> Timestamptz,
    }
}
