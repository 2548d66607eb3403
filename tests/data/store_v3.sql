-- llmost conversation store, schema version 3, written by llmost 0.x before conversations
-- had full-text search (tests/test_store.py opens it with the current code).
CREATE TABLE conversations (
    id      TEXT PRIMARY KEY,
    name    TEXT UNIQUE,
    model   TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    tools   TEXT                       -- JSON: tool definitions last offered
);
INSERT INTO "conversations" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA','weather','openai/gpt-4o',1710000000.0,1710000010.0,'[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]');
INSERT INTO "conversations" VALUES('01J0V3BBBBBBBBBBBBBBBBBBBB',NULL,'anthropic/claude-3.5-sonnet',1710000020.0,1710000030.0,NULL);
INSERT INTO "conversations" VALUES('01J0V3CCCCCCCCCCCCCCCCCCCC','empty',NULL,1710000040.0,1710000040.0,NULL);
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
INSERT INTO "message_images" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA',2,'624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19');
INSERT INTO "message_images" VALUES('01J0V3BBBBBBBBBBBBBBBBBBBB',1,'624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19');
CREATE TABLE messages (
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
    PRIMARY KEY (conversation_id, seq)
);
INSERT INTO "messages" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA',1,'system','"You are terse."',NULL,NULL,NULL,0,NULL,NULL,0,NULL,1710000001.0);
INSERT INTO "messages" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA',2,'user','[{"type":"text","text":"What is this? And the weather in Moscow?"},{"type":"image_url","image_url":{"url":"llmost-image:sha256:624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19","detail":"low"}}]',NULL,NULL,NULL,0,NULL,NULL,0,NULL,1710000002.0);
INSERT INTO "messages" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA',3,'assistant',NULL,'[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Москва\"}"}}]',NULL,NULL,0,'tool_calls','{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}',0,'openai/gpt-4o',1710000003.0);
INSERT INTO "messages" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA',4,'tool','"{\"temp_c\": -3}"',NULL,'call_1','get_weather',0,NULL,NULL,0,NULL,1710000004.0);
INSERT INTO "messages" VALUES('01J0V3AAAAAAAAAAAAAAAAAAAA',5,'assistant','"A white pixel; -3 °C in Moscow."',NULL,NULL,NULL,0,'stop',NULL,0,'openai/gpt-4o',1710000005.0);
INSERT INTO "messages" VALUES('01J0V3BBBBBBBBBBBBBBBBBBBB',1,'user','[{"type":"image_url","image_url":{"url":"llmost-image:sha256:624fc0a006e31b1610bb226be8b1a87911b9c54a390e789e1f30c2517d64db19"}},{"type":"text","text":"Same pixel again"}]',NULL,NULL,NULL,0,NULL,NULL,0,NULL,1710000101.0);
INSERT INTO "messages" VALUES('01J0V3BBBBBBBBBBBBBBBBBBBB',2,'assistant','"```json\n{\"colour\": \"wh"',NULL,NULL,NULL,1,NULL,NULL,1,'anthropic/claude-3.5-sonnet',1710000102.0);
CREATE INDEX conversations_updated ON conversations (updated);
CREATE INDEX message_images_sha256 ON message_images (sha256);
PRAGMA user_version = 3;
