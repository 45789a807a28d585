-- jobcontrol schema 7: a claim's token.
-- claim_token: a random value a claim writes in the row it makes, the same in every attempt
-- of one claim: an attempt whose answer a lost connection cut off is found by it, and the
-- index lets no claim make two rows (NULL for builds not made by a claim on PostgreSQL).
ALTER TABLE builds ADD COLUMN claim_token text;
CREATE UNIQUE INDEX builds_claim_token ON builds (claim_token) WHERE claim_token IS NOT NULL;
