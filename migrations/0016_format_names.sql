-- A blob's format is stored by its stable name (`PhotoFormat::name`: jpeg, png, webp), not a
-- `Debug` string of an enum that may be renamed. Rows written before are rewritten to the stable
-- names (they were Debug strings, lowercased: the same names, but in any other spelling they
-- would be fixed here), and the column takes no other value from now on, so a reader that
-- accepts the stable names only reads every row.
UPDATE blobs SET format = CASE lower(format) WHEN 'jpg' THEN 'jpeg' ELSE lower(format) END
WHERE format NOT IN ('jpeg', 'png', 'webp');
ALTER TABLE blobs ADD CONSTRAINT blobs_format_stable_name CHECK (format IN ('jpeg', 'png', 'webp'));
