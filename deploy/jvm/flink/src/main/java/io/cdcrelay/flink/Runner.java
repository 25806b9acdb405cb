package io.cdcrelay.flink;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

/**
 * Runs Flink SQL files in a local Flink cluster (a MiniCluster in this JVM),
 * configured like the compose cluster (checkpointing off, parallelism 1),
 * for the tests and the demo.
 *
 * <pre>
 * run FILE.sql...                 execute each file as it is; block until every job ends
 * select [--changelog] FILE.sql... QUERY
 *                                 execute the files' statements, then QUERY; print its
 *                                 rows as JSON lines on stdout (the final table, or with
 *                                 --changelog every change with its kind)
 * select --each QUERIES FILE.sql...
 *                                 the same for each line of the file QUERIES, one JSON
 *                                 line per query with its rows or its error
 * </pre>
 *
 * Options before the mode: {@code -D key=value} sets a Flink option (for
 * example restart-strategy.type=fixed-delay).
 *
 * <p>The only change made to a file is the value of every
 * {@code 'properties.bootstrap.servers'} option, which becomes
 * $CDCRELAY_FLINK_BOOTSTRAP_SERVERS when that is set. SET statements are
 * applied to the table configuration, as the SQL client does.
 *
 * <p>Lines on stdout that the Go wrapper (internal/testenv/flink.go) reads:
 * {@code flink-runner: running NAME JOBID} once per job whose status is
 * RUNNING, then {@code flink-runner: ready}. A job that ends prints
 * {@code flink-runner: finished NAME JOBID STATUS}, and the process exits
 * non-zero unless every job finished.
 */
public final class Runner {
    static final String BOOTSTRAP_ENV = "CDCRELAY_FLINK_BOOTSTRAP_SERVERS";
    static final String PREFIX = "flink-runner: ";

    private static final Pattern BOOTSTRAP =
            Pattern.compile("('properties\\.bootstrap\\.servers'\\s*=\\s*)'[^']*'");
    private static final Pattern SET =
            Pattern.compile("(?is)^SET\\s+'([^']*)'\\s*=\\s*'([^']*)'$");

    private Runner() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        try {
            System.exit(run(args, out));
        } catch (UsageException e) {
            System.err.println(PREFIX + e.getMessage());
            System.exit(2);
        }
    }

    static int run(String[] args, PrintStream out) throws Exception {
        Configuration conf = new Configuration();
        // The cluster turns no checkpointing on, as in docker-compose.yml;
        // a job file may SET its own interval (the stateless job does, to
        // commit its offsets after its sink flushed). One slot per job,
        // like the compose cluster.
        conf.setString("parallelism.default", "1");
        int i = 0;
        for (; i < args.length && args[i].equals("-D"); i += 2) {
            if (i + 1 >= args.length) {
                throw new UsageException("-D needs key=value");
            }
            String kv = args[i + 1];
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new UsageException("-D needs key=value, got " + kv);
            }
            conf.setString(kv.substring(0, eq), kv.substring(eq + 1));
        }
        if (conf.containsKey("execution.checkpointing.interval")) {
            throw new UsageException("the cluster runs without checkpoints, as in docker-compose.yml; a job sets its own execution.checkpointing.interval");
        }
        if (i >= args.length) {
            throw new UsageException("usage: Runner [-D key=value]... run FILE.sql... | select [--changelog] FILE.sql... QUERY | select --each QUERIES FILE.sql...");
        }
        String mode = args[i++];
        List<String> rest = List.of(args).subList(i, args.length);
        switch (mode) {
            case "run":
                if (rest.isEmpty()) {
                    throw new UsageException("run needs at least one .sql file");
                }
                return runFiles(conf, rest, out);
            case "select":
                if (!rest.isEmpty() && rest.get(0).equals("--each")) {
                    if (rest.size() < 2) {
                        throw new UsageException("select --each needs a file of queries");
                    }
                    return Select.each(newTableEnv(conf), rest.subList(2, rest.size()), rest.get(1), out);
                }
                boolean changelog = !rest.isEmpty() && rest.get(0).equals("--changelog");
                if (changelog) {
                    rest = rest.subList(1, rest.size());
                }
                if (rest.isEmpty()) {
                    throw new UsageException("select needs a query");
                }
                return Select.run(
                        newTableEnv(conf),
                        rest.subList(0, rest.size() - 1),
                        rest.get(rest.size() - 1),
                        changelog,
                        out);
            default:
                throw new UsageException("unknown mode " + mode + "; want run or select");
        }
    }

    static TableEnvironment newTableEnv(Configuration conf) {
        return TableEnvironment.create(
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
    }

    /** A job started from a file, with the name its pipeline.name gave it. */
    private record Job(String name, JobClient client) {}

    private static int runFiles(Configuration conf, List<String> files, PrintStream out) throws Exception {
        List<Job> jobs = new ArrayList<>();
        for (String file : files) {
            // One table environment per file: a SET in one file does not
            // leak into the next, as with one sql-client -f per file.
            TableEnvironment env = newTableEnv(conf);
            for (String stmt : statements(file)) {
                TableResult r = execute(env, stmt);
                if (r != null && r.getJobClient().isPresent()) {
                    String name = env.getConfig().getConfiguration().getOptional(PipelineOptions.NAME).orElse(file);
                    jobs.add(new Job(name, r.getJobClient().get()));
                }
            }
        }
        if (jobs.isEmpty()) {
            throw new UsageException("no statement in " + files + " started a job");
        }
        for (Job j : jobs) {
            awaitRunning(j);
            out.println(PREFIX + "running " + j.name + " " + j.client.getJobID());
        }
        out.println(PREFIX + "ready");
        int code = 0;
        for (Job j : jobs) {
            JobID id = j.client.getJobID();
            JobStatus status;
            try {
                j.client.getJobExecutionResult().get();
                status = j.client.getJobStatus().get();
            } catch (Exception e) {
                System.err.println(PREFIX + j.name + " " + id + " failed: " + e);
                e.printStackTrace();
                status = JobStatus.FAILED;
            }
            out.println(PREFIX + "finished " + j.name + " " + id + " " + status);
            if (status != JobStatus.FINISHED) {
                code = 1;
            }
        }
        return code;
    }

    private static void awaitRunning(Job j) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
        while (true) {
            JobStatus s = j.client.getJobStatus().get();
            if (s == JobStatus.RUNNING) {
                return;
            }
            if (s.isGloballyTerminalState()) {
                throw new IllegalStateException("job " + j.name + " ended as " + s + " before running");
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("job " + j.name + " not running after 5 minutes: " + s);
            }
            Thread.sleep(50);
        }
    }

    /**
     * Executes one statement. SET is applied to the configuration here, as
     * the SQL client does; everything else goes to executeSql.
     */
    static TableResult execute(TableEnvironment env, String stmt) {
        Matcher m = SET.matcher(stmt.strip());
        if (m.matches()) {
            env.getConfig().getConfiguration().setString(m.group(1), m.group(2));
            return null;
        }
        return env.executeSql(stmt);
    }

    /** Reads a file, substitutes the bootstrap servers and splits it into statements. */
    static List<String> statements(String file) throws IOException {
        String sql = Files.readString(Path.of(file), StandardCharsets.UTF_8);
        String servers = System.getenv(BOOTSTRAP_ENV);
        if (servers != null && !servers.isEmpty()) {
            sql = BOOTSTRAP.matcher(sql).replaceAll("$1" + Matcher.quoteReplacement("'" + servers + "'"));
        }
        return split(sql);
    }

    /**
     * Splits SQL text on the semicolons that end statements, leaving out
     * comments; semicolons inside quotes, backticks and comments do not
     * count.
     */
    static List<String> split(String sql) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        int n = sql.length();
        for (int i = 0; i < n; i++) {
            char c = sql.charAt(i);
            if (c == '-' && i + 1 < n && sql.charAt(i + 1) == '-') {
                while (i < n && sql.charAt(i) != '\n') {
                    i++;
                }
                cur.append('\n');
                continue;
            }
            if (c == '/' && i + 1 < n && sql.charAt(i + 1) == '*') {
                int end = sql.indexOf("*/", i + 2);
                int stop = end < 0 ? n : end + 2;
                if (i + 2 < n && sql.charAt(i + 2) == '+') {
                    cur.append(sql, i, stop); // a hint, not a comment
                } else {
                    cur.append(' ');
                }
                i = stop - 1;
                continue;
            }
            if (c == '\'' || c == '`' || c == '"') {
                int j = i + 1;
                while (j < n) {
                    if (sql.charAt(j) == c) {
                        if (j + 1 < n && sql.charAt(j + 1) == c) {
                            j += 2; // doubled quote
                            continue;
                        }
                        break;
                    }
                    j++;
                }
                cur.append(sql, i, Math.min(j + 1, n));
                i = j;
                continue;
            }
            if (c == ';') {
                add(out, cur);
                continue;
            }
            cur.append(c);
        }
        add(out, cur);
        return out;
    }

    private static void add(List<String> out, StringBuilder cur) {
        String s = cur.toString().strip();
        if (!s.isEmpty()) {
            out.add(s);
        }
        cur.setLength(0);
    }

    static final class UsageException extends Exception {
        UsageException(String msg) {
            super(msg);
        }
    }
}
