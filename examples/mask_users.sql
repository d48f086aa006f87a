-- Masking for a fresh clone of production-like data: run once as `post_clone`, before anyone
-- uses the branch. It keeps row counts, keys and uniqueness (joins and constraints still work)
-- and replaces what identifies a person. Written for a table
--   users (id, email, full_name, phone, birth_date, password_hash)
-- Adapt the column list to your schema; every statement runs in one transaction on PostgreSQL.

UPDATE users SET email = 'user' || id || '@example.invalid';
UPDATE users SET full_name = 'User ' || id;
UPDATE users SET phone = NULL WHERE phone IS NOT NULL;
-- Keep the year (age-based features still behave), drop the day.
UPDATE users SET birth_date = make_date(extract(year FROM birth_date)::int, 1, 1) WHERE birth_date IS NOT NULL;
-- Nobody can log in with a copied password; a semicolon in a string is data, not a separator.
UPDATE users SET password_hash = 'masked;no-login';
