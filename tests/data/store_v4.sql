-- llmost conversation store, schema version 4, written by llmost before attachment texts
-- were stored once (tests/test_store_texts.py opens it with the current code).
-- The full-text index is rebuilt at the end instead of dumping FTS5's shadow tables.
CREATE TABLE conversations (
        id      TEXT PRIMARY KEY,
        name    TEXT UNIQUE,
        model   TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        tools   TEXT                       -- JSON: tool definitions last offered
    );
INSERT INTO "conversations" VALUES('01J0V4AAAAAAAAAAAAAAAAAAAA','inline','openai/gpt-4o',1720000000.0,1720000004.0,NULL);
CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL,
        role            TEXT NOT NULL,
        content         TEXT,              -- JSON: a string or a list of content parts
        tool_calls      TEXT,              -- JSON
        tool_call_id    TEXT,
        name            TEXT,
        prefill         INTEGER NOT NULL DEFAULT 0,
        finish_reason   TEXT,
        usage           TEXT,              -- JSON
        partial         INTEGER NOT NULL DEFAULT 0,
        model           TEXT,
        created         REAL NOT NULL,
        UNIQUE (conversation_id, seq)
    );
INSERT INTO "messages" VALUES(1,'01J0V4AAAAAAAAAAAAAAAAAAAA',1,'user','"summarize\n\nnotes.txt\n```\nline 0: the quokka inventory lists 0 marsupials\nline 1: the quokka inventory lists 1 marsupials\nline 2: the quokka inventory lists 2 marsupials\nline 3: the quokka inventory lists 3 marsupials\nline 4: the quokka inventory lists 4 marsupials\nline 5: the quokka inventory lists 5 marsupials\nline 6: the quokka inventory lists 6 marsupials\nline 7: the quokka inventory lists 7 marsupials\nline 8: the quokka inventory lists 8 marsupials\nline 9: the quokka inventory lists 9 marsupials\nline 10: the quokka inventory lists 10 marsupials\nline 11: the quokka inventory lists 11 marsupials\nline 12: the quokka inventory lists 12 marsupials\nline 13: the quokka inventory lists 13 marsupials\nline 14: the quokka inventory lists 14 marsupials\nline 15: the quokka inventory lists 15 marsupials\nline 16: the quokka inventory lists 16 marsupials\nline 17: the quokka inventory lists 17 marsupials\nline 18: the quokka inventory lists 18 marsupials\nline 19: the quokka inventory lists 19 marsupials\nline 20: the quokka inventory lists 20 marsupials\nline 21: the quokka inventory lists 21 marsupials\nline 22: the quokka inventory lists 22 marsupials\nline 23: the quokka inventory lists 23 marsupials\nline 24: the quokka inventory lists 24 marsupials\nline 25: the quokka inventory lists 25 marsupials\nline 26: the quokka inventory lists 26 marsupials\nline 27: the quokka inventory lists 27 marsupials\nline 28: the quokka inventory lists 28 marsupials\nline 29: the quokka inventory lists 29 marsupials\nline 30: the quokka inventory lists 30 marsupials\nline 31: the quokka inventory lists 31 marsupials\nline 32: the quokka inventory lists 32 marsupials\nline 33: the quokka inventory lists 33 marsupials\nline 34: the quokka inventory lists 34 marsupials\nline 35: the quokka inventory lists 35 marsupials\nline 36: the quokka inventory lists 36 marsupials\nline 37: the quokka inventory lists 37 marsupials\nline 38: the quokka inventory lists 38 marsupials\nline 39: the quokka inventory lists 39 marsupials\n```"',NULL,NULL,NULL,0,NULL,NULL,0,NULL,1720000001.0);
INSERT INTO "messages" VALUES(2,'01J0V4AAAAAAAAAAAAAAAAAAAA',2,'assistant','"Forty lines about quokkas."',NULL,NULL,NULL,0,'stop',NULL,0,'openai/gpt-4o',1720000002.0);
INSERT INTO "messages" VALUES(3,'01J0V4AAAAAAAAAAAAAAAAAAAA',3,'user','[{"type":"text","text":"and this?\n\nnotes.txt\n```\nline 0: the quokka inventory lists 0 marsupials\nline 1: the quokka inventory lists 1 marsupials\nline 2: the quokka inventory lists 2 marsupials\nline 3: the quokka inventory lists 3 marsupials\nline 4: the quokka inventory lists 4 marsupials\nline 5: the quokka inventory lists 5 marsupials\nline 6: the quokka inventory lists 6 marsupials\nline 7: the quokka inventory lists 7 marsupials\nline 8: the quokka inventory lists 8 marsupials\nline 9: the quokka inventory lists 9 marsupials\nline 10: the quokka inventory lists 10 marsupials\nline 11: the quokka inventory lists 11 marsupials\nline 12: the quokka inventory lists 12 marsupials\nline 13: the quokka inventory lists 13 marsupials\nline 14: the quokka inventory lists 14 marsupials\nline 15: the quokka inventory lists 15 marsupials\nline 16: the quokka inventory lists 16 marsupials\nline 17: the quokka inventory lists 17 marsupials\nline 18: the quokka inventory lists 18 marsupials\nline 19: the quokka inventory lists 19 marsupials\nline 20: the quokka inventory lists 20 marsupials\nline 21: the quokka inventory lists 21 marsupials\nline 22: the quokka inventory lists 22 marsupials\nline 23: the quokka inventory lists 23 marsupials\nline 24: the quokka inventory lists 24 marsupials\nline 25: the quokka inventory lists 25 marsupials\nline 26: the quokka inventory lists 26 marsupials\nline 27: the quokka inventory lists 27 marsupials\nline 28: the quokka inventory lists 28 marsupials\nline 29: the quokka inventory lists 29 marsupials\nline 30: the quokka inventory lists 30 marsupials\nline 31: the quokka inventory lists 31 marsupials\nline 32: the quokka inventory lists 32 marsupials\nline 33: the quokka inventory lists 33 marsupials\nline 34: the quokka inventory lists 34 marsupials\nline 35: the quokka inventory lists 35 marsupials\nline 36: the quokka inventory lists 36 marsupials\nline 37: the quokka inventory lists 37 marsupials\nline 38: the quokka inventory lists 38 marsupials\nline 39: the quokka inventory lists 39 marsupials\n```"},{"type":"image_url","image_url":{"url":"llmost-image:sha256:624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19"}}]',NULL,NULL,NULL,0,NULL,NULL,0,NULL,1720000003.0);
INSERT INTO "messages" VALUES(4,'01J0V4AAAAAAAAAAAAAAAAAAAA',4,'assistant','"A pixel."',NULL,NULL,NULL,0,'stop',NULL,0,NULL,1720000004.0);
CREATE TABLE images (
        sha256  TEXT PRIMARY KEY,
        url     TEXT NOT NULL
    );
INSERT INTO "images" VALUES('624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19','data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==');
CREATE TABLE message_images (
        conversation_id TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq, sha256)
    );
INSERT INTO "message_images" VALUES('01J0V4AAAAAAAAAAAAAAAAAAAA',3,'624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19');
CREATE VIRTUAL TABLE messages_fts USING fts5 (
        body, content = 'message_bodies', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
CREATE INDEX conversations_updated ON conversations (updated);
CREATE INDEX message_images_sha256 ON message_images (sha256);
CREATE VIEW message_bodies AS
        SELECT id, CASE WHEN json_valid(content) THEN CASE json_type(content) WHEN 'text' THEN json_extract(content, '$') WHEN 'array' THEN (WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < json_array_length(content)) SELECT group_concat(json_extract(content, '$[' || n || '].text'), char(10)) FROM i WHERE json_extract(content, '$[' || n || '].type') = 'text') END ELSE content END AS body FROM messages WHERE role IN ('user', 'assistant');
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
        WHEN new.role IN ('user', 'assistant') BEGIN
            INSERT INTO messages_fts (rowid, body) VALUES (new.id, CASE WHEN json_valid(new.content) THEN CASE json_type(new.content) WHEN 'text' THEN json_extract(new.content, '$') WHEN 'array' THEN (WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < json_array_length(new.content)) SELECT group_concat(json_extract(new.content, '$[' || n || '].text'), char(10)) FROM i WHERE json_extract(new.content, '$[' || n || '].type') = 'text') END ELSE new.content END);
        END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
        WHEN old.role IN ('user', 'assistant') BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, body)
                VALUES ('delete', old.id, CASE WHEN json_valid(old.content) THEN CASE json_type(old.content) WHEN 'text' THEN json_extract(old.content, '$') WHEN 'array' THEN (WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < json_array_length(old.content)) SELECT group_concat(json_extract(old.content, '$[' || n || '].text'), char(10)) FROM i WHERE json_extract(old.content, '$[' || n || '].type') = 'text') END ELSE old.content END);
        END;
CREATE TRIGGER messages_fts_update AFTER UPDATE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, body)
                SELECT 'delete', old.id, CASE WHEN json_valid(old.content) THEN CASE json_type(old.content) WHEN 'text' THEN json_extract(old.content, '$') WHEN 'array' THEN (WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < json_array_length(old.content)) SELECT group_concat(json_extract(old.content, '$[' || n || '].text'), char(10)) FROM i WHERE json_extract(old.content, '$[' || n || '].type') = 'text') END ELSE old.content END
                WHERE old.role IN ('user', 'assistant');
            INSERT INTO messages_fts (rowid, body)
                SELECT new.id, CASE WHEN json_valid(new.content) THEN CASE json_type(new.content) WHEN 'text' THEN json_extract(new.content, '$') WHEN 'array' THEN (WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < json_array_length(new.content)) SELECT group_concat(json_extract(new.content, '$[' || n || '].text'), char(10)) FROM i WHERE json_extract(new.content, '$[' || n || '].type') = 'text') END ELSE new.content END WHERE new.role IN ('user', 'assistant');
        END;
PRAGMA user_version = 4;
