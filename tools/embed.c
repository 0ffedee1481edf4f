/* sg-embed: turns a file into a C source defining
 *   const unsigned char NAME[]; const size_t NAME_len;
 * so documents (the OpenAPI file) are compiled into the binary.
 * Usage: sg-embed INPUT OUTPUT NAME */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s INPUT OUTPUT NAME\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (in == NULL) {
        perror(argv[1]);
        return 1;
    }
    FILE *out = fopen(argv[2], "w");
    if (out == NULL) {
        perror(argv[2]);
        fclose(in);
        return 1;
    }
    fprintf(out, "/* Generated from %s by sg-embed. */\n#include <stddef.h>\n", argv[1]);
    fprintf(out, "extern const unsigned char %s[];\nextern const size_t %s_len;\n", argv[3],
            argv[3]);
    fprintf(out, "const unsigned char %s[] = {\n", argv[3]);
    size_t n = 0;
    int c;
    while ((c = fgetc(in)) != EOF) {
        fprintf(out, "0x%02x,%s", c, (++n % 16) == 0 ? "\n" : "");
    }
    fprintf(out, "0x00};\nconst size_t %s_len = %zu;\n", argv[3], n);
    int bad = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0)
        bad = 1;
    return bad ? 1 : 0;
}
