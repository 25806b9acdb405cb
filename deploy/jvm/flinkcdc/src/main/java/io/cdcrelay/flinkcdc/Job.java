package io.cdcrelay.flinkcdc;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

/**
 * Runs one Flink SQL file in a local cluster (a MiniCluster in this JVM)
 * and blocks while its job runs: the Flink CDC setup of `make bench-peers`.
 *
 * <pre>
 * Job [-D key=value]... FILE.sql
 * </pre>
 *
 * <p>Each {@code -D} sets a Flink option before the cluster starts
 * (checkpointing, state backend, a checkpoint to restore). Statements are
 * separated by a semicolon at the end of a line. Prints
 * {@code flinkcdc: running JOBID} on stdout once the job runs; exits
 * non-zero if the job fails.
 */
public final class Job {
    private Job() {}

    public static void main(String[] args) throws Exception {
        Configuration conf = new Configuration();
        conf.setString("parallelism.default", "1");
        int i = 0;
        for (; i + 1 < args.length && args[i].equals("-D"); i += 2) {
            int eq = args[i + 1].indexOf('=');
            if (eq <= 0) {
                System.err.println("flinkcdc: -D needs key=value, got " + args[i + 1]);
                System.exit(2);
            }
            conf.setString(args[i + 1].substring(0, eq), args[i + 1].substring(eq + 1));
        }
        if (i != args.length - 1) {
            System.err.println("flinkcdc: usage: Job [-D key=value]... FILE.sql");
            System.exit(2);
        }
        TableEnvironment env = TableEnvironment.create(
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
        String sql = Files.readString(Path.of(args[i]), StandardCharsets.UTF_8);
        JobClient job = null;
        for (String stmt : sql.split(";\\s*(\\n|$)")) {
            if (stmt.isBlank()) {
                continue;
            }
            TableResult r = env.executeSql(stmt);
            if (r.getJobClient().isPresent()) {
                job = r.getJobClient().get();
            }
        }
        if (job == null) {
            System.err.println("flinkcdc: no statement of " + args[i] + " started a job");
            System.exit(2);
        }
        System.out.println("flinkcdc: running " + job.getJobID());
        System.out.flush();
        job.getJobExecutionResult().get();
        System.out.println("flinkcdc: finished " + job.getJobStatus().get());
    }
}
