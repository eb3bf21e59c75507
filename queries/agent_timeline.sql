-- Everything one agent did, in order: processes, files, network, privilege.
-- Set the agent first, e.g. in the duckdb shell:
--   SET VARIABLE agent = 'my-agent';
-- Run from inside the evidence directory.
SELECT
    ts,
    pid,
    kind,
    coalesce(
        array_to_string(argv, ' '),
        coalesce(new_path, path),
        coalesce(dns_name, addr) || ':' || port,
        unix_path,
        name,
        CAST(exit_code AS VARCHAR)
    ) AS what,
    error
FROM read_parquet('events/**/*.parquet', hive_partitioning = true)
WHERE agent = getvariable('agent')
ORDER BY ts, seq;
