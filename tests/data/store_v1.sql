-- llmost conversation store, schema version 1 (before images were deduplicated).
-- messages.content was plain text; when multipart = 1 it held a JSON array of content parts
-- with images inline as data: URLs. No tool_call_id, name, usage or partial columns.
CREATE TABLE conversations (
    id      TEXT PRIMARY KEY,
    name    TEXT UNIQUE,
    model   TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL,
    content         TEXT,
    multipart       INTEGER NOT NULL DEFAULT 0,
    tool_calls      TEXT,
    prefill         INTEGER NOT NULL DEFAULT 0,
    finish_reason   TEXT,
    model           TEXT,
    created         REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
PRAGMA user_version = 1;

INSERT INTO conversations VALUES ('01HZX0V1AAAAAAAAAAAAAAAAAA', 'work', 'openai/gpt-4o', 1700000000.0, 1700000100.0);
INSERT INTO conversations VALUES ('01HZX0V1BBBBBBBBBBBBBBBBBB', NULL, NULL, 1700000200.0, 1700000300.0);

INSERT INTO messages VALUES ('01HZX0V1AAAAAAAAAAAAAAAAAA', 1, 'system', 'You are terse.', 0, NULL, 0, NULL, NULL, 1700000000.5);
INSERT INTO messages VALUES ('01HZX0V1AAAAAAAAAAAAAAAAAA', 2, 'user', '[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","detail":"low"}}]', 1, NULL, 0, NULL, NULL, 1700000001.0);
INSERT INTO messages VALUES ('01HZX0V1AAAAAAAAAAAAAAAAAA', 3, 'assistant', 'A single white pixel.', 0, NULL, 0, 'stop', 'openai/gpt-4o', 1700000002.0);
INSERT INTO messages VALUES ('01HZX0V1AAAAAAAAAAAAAAAAAA', 4, 'user', 'Weather in Москва?', 0, NULL, 0, NULL, NULL, 1700000003.0);
INSERT INTO messages VALUES ('01HZX0V1AAAAAAAAAAAAAAAAAA', 5, 'assistant', NULL, 0, '[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Moscow\"}"}}]', 0, 'tool_calls', 'openai/gpt-4o', 1700000004.0);
INSERT INTO messages VALUES ('01HZX0V1BBBBBBBBBBBBBBBBBB', 1, 'user', '[{"type":"text","text":"not parts, just text"}]', 0, NULL, 0, NULL, NULL, 1700000200.5);
INSERT INTO messages VALUES ('01HZX0V1BBBBBBBBBBBBBBBBBB', 2, 'assistant', '```json
{"answer": 42}
```', 0, NULL, 1, 'length', 'mistral/small', 1700000201.0);
INSERT INTO messages VALUES ('01HZX0V1BBBBBBBBBBBBBBBBBB', 3, 'user', '[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","detail":"low"}},{"type":"text","text":"Same picture again"}]', 1, NULL, 0, NULL, NULL, 1700000202.0);
