//! Answers to customers' WhatsApp replies (the confirmations `dunning-web` queues
//! for `STOP`, `MULAI`, `SUDAH BAYAR`, a promise to pay): WhatsApp jobs like
//! reminders (same claim, pacing, quota, retries and ledger), but with no invoice
//! to re-check and a text written when the reply arrived.

use dunning_core::message::Rendered;
use dunning_store::queue::Answer;

use crate::recheck::{Ready, Verdict};

/// The re-check of an answer: it goes out once, to the number that wrote, whatever
/// pause or opt-out the reply itself just set (the `STOP` confirmation must reach
/// a customer who is now opted out).
pub(crate) fn verdict(answer: Answer) -> Verdict {
    if answer.ledger_status != "queued" {
        return Verdict::Skip(format!("already {}", answer.ledger_status));
    }
    let Some(recipient) = answer.recipient else {
        return Verdict::Fail(format!(
            "the answer to reply {} has no number to send to (the reply's sender was blank)",
            answer.reply_id
        ));
    };
    Verdict::Send(Ready {
        recipient,
        rendered: Rendered {
            subject: String::new(),
            body: answer.body,
        },
        reference: format!("reply-{}/{}", answer.reply_id, answer.stage),
    })
}
