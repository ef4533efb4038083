DROP TABLE IF EXISTS session_revocations;
