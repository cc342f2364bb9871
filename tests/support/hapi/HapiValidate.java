/*
 * Validates FHIR R4 (4.0.1) JSON files with HAPI FHIR's FhirInstanceValidator, offline.
 *
 * Why one small program: starting a JVM and loading the R4 definitions costs seconds, so
 * tests/support/hapi_validator.py starts this once per run and hands it every file.
 *
 * Input: one file path per line on standard input (end of input ends the run).
 * Output: one JSON object per input file on standard output, in input order:
 *   {"file": "<path>", "issues": [{"severity": "error", "location": "Bundle.entry[0]...",
 *     "line": 12, "column": 5, "messageId": "...", "message": "..."}]}
 * A file that cannot be read or parsed gets one "fatal" issue; the run goes on.
 * Files are validated on -Dhl7gw.threads threads (default: up to 2), answered in input order.
 *
 * Validation support, all in-process (no terminology server, no network):
 * DefaultProfileValidationSupport (the R4 core definitions and the code systems shipped with
 * it), CommonCodeSystemsTerminologyService (UCUM, BCP-47, ISO currencies, MIME types...),
 * InMemoryTerminologyServerValidationSupport (expands and checks value sets from the above),
 * SnapshotGeneratingValidationSupport (snapshots of profiles that only carry a differential).
 * The severities are HAPI's own; tests/support/hapi_validator.py decides which count.
 */

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

public final class HapiValidate {
    private HapiValidate() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        FhirContext context = FhirContext.forR4();
        ValidationSupportChain chain = new ValidationSupportChain(
                new DefaultProfileValidationSupport(context),
                new CommonCodeSystemsTerminologyService(context),
                new InMemoryTerminologyServerValidationSupport(context),
                new SnapshotGeneratingValidationSupport(context));
        FhirValidator validator = context.newValidator();
        validator.registerValidatorModule(new FhirInstanceValidator(chain));

        // FhirValidator is thread-safe: files are validated in parallel, answered in order.
        int threads = Integer.getInteger("hl7gw.threads",
                Math.min(2, Runtime.getRuntime().availableProcessors()));
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, threads));
        ArrayDeque<Future<String>> pending = new ArrayDeque<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            String file = line;
            pending.add(pool.submit(() -> validateFile(validator, file)));
            while (!pending.isEmpty() && pending.peek().isDone()) {
                out.println(pending.poll().get());
                out.flush();
            }
        }
        while (!pending.isEmpty()) {
            out.println(pending.poll().get());
            out.flush();
        }
        pool.shutdown();
    }

    private static String validateFile(FhirValidator validator, String file) {
        StringBuilder json = new StringBuilder("{\"file\":").append(quote(file)).append(",\"issues\":[");
        try {
            String text = Files.readString(Path.of(file), StandardCharsets.UTF_8);
            ValidationResult result = validator.validateWithResult(text);
            boolean first = true;
            for (SingleValidationMessage message : result.getMessages()) {
                if (!first) {
                    json.append(',');
                }
                first = false;
                appendIssue(json, message.getSeverity().getCode(), message.getLocationString(),
                        message.getLocationLine(), message.getLocationCol(), message.getMessageId(),
                        message.getMessage());
            }
        } catch (Exception | StackOverflowError failure) {
            appendIssue(json, "fatal", "", null, null, "hl7gw-unreadable",
                    failure.getClass().getSimpleName() + ": " + failure.getMessage());
        }
        return json.append("]}").toString();
    }

    private static void appendIssue(StringBuilder json, String severity, String location,
            Integer line, Integer column, String messageId, String message) {
        json.append("{\"severity\":").append(quote(severity))
                .append(",\"location\":").append(quote(location))
                .append(",\"line\":").append(line == null ? "null" : line.toString())
                .append(",\"column\":").append(column == null ? "null" : column.toString())
                .append(",\"messageId\":").append(quote(messageId))
                .append(",\"message\":").append(quote(message)).append('}');
    }

    private static String quote(String value) {
        if (value == null) {
            return "null";
        }
        StringBuilder quoted = new StringBuilder(value.length() + 2).append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> quoted.append("\\\"");
                case '\\' -> quoted.append("\\\\");
                case '\n' -> quoted.append("\\n");
                case '\r' -> quoted.append("\\r");
                case '\t' -> quoted.append("\\t");
                default -> {
                    if (c < 0x20) {
                        quoted.append(String.format("\\u%04x", (int) c));
                    } else {
                        quoted.append(c);
                    }
                }
            }
        }
        return quoted.append('"').toString();
    }
}
