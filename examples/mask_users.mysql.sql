-- The same masking for MySQL/MariaDB (see mask_users.sql). DML only: MySQL commits DDL as it
-- runs, so a masking file without DDL rolls back whole if a statement fails.

UPDATE users SET email = CONCAT('user', id, '@example.invalid');
UPDATE users SET full_name = CONCAT('User ', id);
UPDATE users SET phone = NULL WHERE phone IS NOT NULL;
UPDATE users SET birth_date = MAKEDATE(YEAR(birth_date), 1) WHERE birth_date IS NOT NULL;
UPDATE users SET password_hash = 'masked;no-login';
