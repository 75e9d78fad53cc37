-- vidbatch state database at migration m001_initial, with one running job. Frozen: never edit.
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'vidbatch','m001_initial','2026-11-22 04:11:47.305259+00:00');
CREATE TABLE "events" (
   "id" INTEGER PRIMARY KEY,
   "key" TEXT,
   "at" REAL,
   "event" TEXT,
   "from_state" TEXT,
   "to_state" TEXT,
   "name" TEXT,
   "detail" TEXT
);
INSERT INTO "events" VALUES(1,'vb1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',1.79532070730616044994e+09,'seen',NULL,'new','fox','{}');
INSERT INTO "events" VALUES(2,'vb1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',1.79532070730736827849e+09,'submit','new','submitting','fox','{}');
INSERT INTO "events" VALUES(3,'vb1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',1.79532070730828905106e+09,'submitted','submitting','running','fox','{"task_id": "106916112212032"}');
CREATE TABLE "jobs" (
   "key" TEXT PRIMARY KEY,
   "request" TEXT,
   "model" TEXT,
   "mode" TEXT,
   "duration" INTEGER,
   "resolution" TEXT,
   "prompt" TEXT,
   "name" TEXT,
   "manifest" TEXT,
   "state" TEXT NOT NULL,
   "task_id" TEXT,
   "file_id" TEXT,
   "attempts" INTEGER DEFAULT 0,
   "error_code" INTEGER,
   "error_message" TEXT,
   "trace_id" TEXT,
   "video_width" INTEGER,
   "video_height" INTEGER,
   "video_bytes" INTEGER,
   "video_sha256" TEXT,
   "created_at" REAL,
   "updated_at" REAL,
   "submitted_at" REAL,
   "rendered_at" REAL,
   "downloaded_at" REAL
);
INSERT INTO "jobs" VALUES('vb1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','{"model": "MiniMax-Hailuo-02", "prompt": "A frozen fox"}','MiniMax-Hailuo-02','t2v',6,'768P','A frozen fox','fox','/old/shots.toml','running','106916112212032',NULL,1,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1.79532070730580830576e+09,1.79532070730780124664e+09,1.7953207073077037335e+09,NULL,NULL);
CREATE TABLE "outputs" (
   "path" TEXT PRIMARY KEY,
   "key" TEXT REFERENCES "jobs"("key"),
   "name" TEXT,
   "manifest" TEXT,
   "size" INTEGER,
   "sha256" TEXT,
   "mtime_ns" INTEGER,
   "written_at" REAL
);
CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE INDEX "idx_jobs_state"
    ON "jobs" ("state");
CREATE INDEX "idx_jobs_task_id"
    ON "jobs" ("task_id");
CREATE INDEX "idx_outputs_key"
    ON "outputs" ("key");
CREATE INDEX "idx_events_key_id"
    ON "events" ("key", "id");
COMMIT;
