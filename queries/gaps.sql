-- Where the evidence is incomplete: events the kernel could not deliver
-- (per CPU), and rows the store could not keep when its disk failed, with
-- their time ranges. No rows means nothing was lost. Run from inside the
-- evidence directory.
SELECT lost, cause, cpu, count, since, until
FROM read_parquet('gaps/**/*.parquet', hive_partitioning = true)
ORDER BY since, cpu;
