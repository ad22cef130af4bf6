package io.notipipe.connect.http;

/** The connector's version, from the jar manifest (Implementation-Version) written by Maven. */
final class Version {

    private Version() {
    }

    static String get() {
        String version = Version.class.getPackage().getImplementationVersion();
        return version == null ? "unknown" : version;
    }
}
