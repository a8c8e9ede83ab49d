-- Why a reminder went out without its payment link (PAYMENT_LINK: gateway down, key
-- refused, …): the reminder is never held back for its link; the error is kept on
-- its ledger row for `failed` and `stats`. NULL when it carried its link (or none
-- was asked for).
ALTER TABLE notifications ADD COLUMN link_error TEXT;
CREATE INDEX notifications_link_error ON notifications (created_at) WHERE link_error IS NOT NULL;
