-- A vidbatch state database written by the release before migration m002 (schema m001_initial),
-- made by a real `vidbatch run --sim shots.toml` of tests/data/frozen_m001/shots.toml (commit d4063e5):
-- fox and owl done (their videos are in tests/data/frozen_m001/renders-sim), broken failed (its
-- error stored as the exception's text). Paths start with /tmp/vbfrozen/proj, which tests replace
-- with the folder they copy the project to. Frozen: never edit; dumped with sqlite3 iterdump().
BEGIN TRANSACTION;
CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
INSERT INTO "_sqlite_migrations" VALUES(1,'vidbatch','m001_initial','2026-12-02 09:34:24.996690+00:00');
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
INSERT INTO "events" VALUES(1,'vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89',1.7962040650274939537e+09,'seen',NULL,'new','fox','{}');
INSERT INTO "events" VALUES(2,'vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760',1.79620406502825498583e+09,'seen',NULL,'new','owl','{}');
INSERT INTO "events" VALUES(3,'vb1:98c389802c4601936f290c2abb63b866b051589f340dfb129733f635101c7efb',1.7962040650288486481e+09,'seen',NULL,'new','broken','{}');
INSERT INTO "events" VALUES(4,'vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89',1.79620406503039789199e+09,'submit','new','submitting','fox','{"reason": "never rendered"}');
INSERT INTO "events" VALUES(5,'vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89',1.79620406503861308094e+09,'submitted','submitting','running','fox','{"task_id": "359976101726099"}');
INSERT INTO "events" VALUES(6,'vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760',1.79620406504443740841e+09,'submit','new','submitting','owl','{"reason": "never rendered"}');
INSERT INTO "events" VALUES(7,'vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89',1.79620406504917955398e+09,'status',NULL,NULL,'fox','{"status": "Success"}');
INSERT INTO "events" VALUES(8,'vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89',1.79620406505029511453e+09,'rendered','running','rendered','fox','{"file_id": "272832610851630"}');
INSERT INTO "events" VALUES(9,'vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760',1.79620406505713748929e+09,'submitted','submitting','running','owl','{"task_id": "359976101726100"}');
INSERT INTO "events" VALUES(10,'vb1:98c389802c4601936f290c2abb63b866b051589f340dfb129733f635101c7efb',1.79620406505993676182e+09,'submit','new','submitting','broken','{"reason": "never rendered"}');
INSERT INTO "events" VALUES(11,'vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89',1.79620406507015228274e+09,'downloaded','rendered','done','fox','{"bytes": 9934, "path": "/tmp/vbfrozen/proj/renders-sim/fox.mp4", "sha256": "3adbd50d94737b409abac8a30643d418a399e64dadca8e3c9aa5cc7092ab33a7"}');
INSERT INTO "events" VALUES(12,'vb1:98c389802c4601936f290c2abb63b866b051589f340dfb129733f635101c7efb',1.7962040650716948509e+09,'submitted','submitting','running','broken','{"task_id": "359976101726101"}');
INSERT INTO "events" VALUES(13,'vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760',1.79620406507306027408e+09,'status',NULL,NULL,'owl','{"status": "Success"}');
INSERT INTO "events" VALUES(14,'vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760',1.79620406507410168648e+09,'rendered','running','rendered','owl','{"file_id": "272832610851631"}');
INSERT INTO "events" VALUES(15,'vb1:98c389802c4601936f290c2abb63b866b051589f340dfb129733f635101c7efb',1.79620406508499312397e+09,'status',NULL,NULL,'broken','{"status": "Fail"}');
INSERT INTO "events" VALUES(16,'vb1:98c389802c4601936f290c2abb63b866b051589f340dfb129733f635101c7efb',1.79620406508632183073e+09,'failed','running','failed','broken','{"code": null, "error": "task 359976101726101 ended with status Fail: simulated render failure (the prompt contains ''sim-fail'') [call=query status_msg=\"simulated render failure (the prompt contains ''sim-fail'')\" trace_id=9c0758f612a39e8b39d233560630fbf2]\n  hint: the render failed on MiniMax''s side; running the job again submits a new task"}');
INSERT INTO "events" VALUES(17,'vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760',1.79620406509049963944e+09,'downloaded','rendered','done','owl','{"bytes": 9922, "path": "/tmp/vbfrozen/proj/renders-sim/owl.mp4", "sha256": "8874d0ca73c627942d015cef703f5824143dffae4356617204e26097ea33774e"}');
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
INSERT INTO "jobs" VALUES('vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89','{"model": "MiniMax-Hailuo-02", "prompt": "A red fox trots through fresh snow at dawn"}','MiniMax-Hailuo-02','t2v',6,'768P','A red fox trots through fresh snow at dawn','fox','/tmp/vbfrozen/proj/shots.toml','done','359976101726099','272832610851630',1,NULL,NULL,NULL,1366,768,9934,'3adbd50d94737b409abac8a30643d418a399e64dadca8e3c9aa5cc7092ab33a7',1.79620406502699279786e+09,1.79620406506919884684e+09,1.79620406503786468502e+09,1.79620406504948806761e+09,1.79620406506897854802e+09);
INSERT INTO "jobs" VALUES('vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760','{"model": "MiniMax-Hailuo-02", "prompt": "An owl blinks slowly [Push in]"}','MiniMax-Hailuo-02','t2v',6,'768P','An owl blinks slowly [Push in]','owl','/tmp/vbfrozen/proj/shots.toml','done','359976101726100','272832610851631',1,NULL,NULL,NULL,1366,768,9922,'8874d0ca73c627942d015cef703f5824143dffae4356617204e26097ea33774e',1.79620406502792549132e+09,1.7962040650897989273e+09,1.79620406505083680158e+09,1.79620406507340145112e+09,1.79620406508969855307e+09);
INSERT INTO "jobs" VALUES('vb1:98c389802c4601936f290c2abb63b866b051589f340dfb129733f635101c7efb','{"model": "MiniMax-Hailuo-02", "prompt": "A lighthouse in a storm sim-fail"}','MiniMax-Hailuo-02','t2v',6,'768P','A lighthouse in a storm sim-fail','broken','/tmp/vbfrozen/proj/shots.toml','failed','359976101726101',NULL,1,NULL,'task 359976101726101 ended with status Fail: simulated render failure (the prompt contains ''sim-fail'') [call=query status_msg="simulated render failure (the prompt contains ''sim-fail'')" trace_id=9c0758f612a39e8b39d233560630fbf2]
  hint: the render failed on MiniMax''s side; running the job again submits a new task','9c0758f612a39e8b39d233560630fbf2',NULL,NULL,NULL,NULL,1.79620406502854704851e+09,1.79620406508558678624e+09,1.79620406507090401649e+09,NULL,NULL);
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
INSERT INTO "outputs" VALUES('/tmp/vbfrozen/proj/renders-sim/fox.mp4','vb1:7203a9a0dca932a9eb56bb7c60313411155d7ba373b42b047e05862e60ac9a89','fox','/tmp/vbfrozen/proj/shots.toml',9934,'3adbd50d94737b409abac8a30643d418a399e64dadca8e3c9aa5cc7092ab33a7',1796204065058680214,1.7962040650647668838e+09);
INSERT INTO "outputs" VALUES('/tmp/vbfrozen/proj/renders-sim/owl.mp4','vb1:382c70285f6eb6d382bd6dca091f431959e0d6946cf59507dfe22548f856d760','owl','/tmp/vbfrozen/proj/shots.toml',9922,'8874d0ca73c627942d015cef703f5824143dffae4356617204e26097ea33774e',1796204065084718429,1.79620406508898687366e+09);
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
