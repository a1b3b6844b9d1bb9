/*
 * Tokens of latex2sympy2_extended's grammar (PS.g4), as the grader's lexer produces them.
 */
#ifndef SR_GRADE_GRADE_LEX_H
#define SR_GRADE_GRADE_LEX_H

#include <stddef.h>

enum {
    TK_EOF = 0, TK_SKIP, TK_UNSUPPORTED,
    TK_TRANSPOSE, TK_DEGREE,
    TK_ADD, TK_SUB, TK_MUL, TK_DIV,
    TK_LPAREN, TK_RPAREN, TK_LPAREN_VIS, TK_RPAREN_VIS, TK_LGROUP, TK_RGROUP,
    TK_LBRACE, TK_RBRACE, TK_LBRACE_VIS, TK_RBRACE_VIS, TK_LBRACE_CMD, TK_RBRACE_CMD,
    TK_LBRACKET, TK_RBRACKET, TK_LBRACK, TK_RBRACK,
    TK_PHANTOM, TK_BOXED,
    TK_BAR, TK_LVERT, TK_RVERT, TK_VERT, TK_NORM, TK_LANGLE, TK_RANGLE,
    TK_LFLOOR, TK_RFLOOR, TK_LCEIL, TK_RCEIL,
    TK_LIM, TK_LIM_APPROACH, TK_INT, TK_SUM, TK_PROD,
    TK_FUNC1,        /* \log \ln \exp \sin .. \det \floor \ceil (single argument) */
    TK_FUNC_GAMMA,   /* \Gamma \gamma */
    TK_FUNC_MULTI,   /* \gcd \lcm \max \min */
    TK_OPNAME1,      /* bare operator names: floor, ceil, arsinh, eye, rank, tr, ... */
    TK_OPNAME_MULTI, /* gcd, lcm, zeros, ones, diag, hstack, vstack, orth... */
    TK_SQRT, TK_TIMES, TK_CDOT, TK_CMD_DIV, TK_FRAC, TK_BINOM, TK_CHOOSE, TK_MOD, TK_MATHIT,
    TK_OPERATORNAME,
    TK_MATRIX_WORD, TK_MATRIX_START, TK_MATRIX_END, TK_ARRAY_START, TK_ARRAY_END,
    TK_DET_START, TK_DET_END, TK_AMP, TK_ROWSEP,
    TK_UNDERSCORE, TK_CARET, TK_COLON, TK_SEMICOLON, TK_COMMA, TK_PERIOD,
    TK_DIFFERENTIAL, TK_EXP_E, TK_E_NOTATION_E, TK_LETTER,
    TK_NUMBER, TK_E_NOTATION,
    TK_IN, TK_ASSIGN, TK_EQUAL, TK_APPROX, TK_LT, TK_LTE, TK_GT, TK_GTE, TK_UNEQUAL,
    TK_BANG, TK_PERCENT_NUMBER,
    TK_GREEK, TK_OTHER_SYMBOL, TK_SYMBOL,
    TK_SETLIT, TK_ACCENT,
    TK_UNION, TK_INTERSECTION, TK_SET_MINUS, TK_PLUS_MINUS, TK_SET_EMPTY, TK_SUPSET, TK_SUBSET,
    TK_NOTIN,
};

typedef struct GTok {
    int type;
    const char *s; /* points into the source */
    size_t n;
} GTok;

/* Tokenises s[0..n) into out (at most max tokens, the last one TK_EOF); *count = tokens
 * before EOF. Returns 0, -1 for a character no token matches, -2 for too many tokens. */
int glex(const char *s, size_t n, GTok *out, int max, int *count);

#endif
